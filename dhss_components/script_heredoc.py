"""A script carried inside the command that runs it, as a quoted here-document.

The share and host-port commands carry their whole script (``scripts/*.sh``) in their text,
so a change to a script shows up in ``pulumi preview`` as an update of every command that
runs it, and what a test runs is byte for byte what the program declares. The script is
read from bash's stdin (``bash -s``), so it must end with a newline and never contain a line
equal to the delimiter that ends the here-document.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from functools import cache
from pathlib import Path

SCRIPTS = Path(__file__).with_name("scripts")


@cache
def script_text(path: Path, delimiter: str) -> str:
    """The script exactly as it is on disk, checked to fit in a here-document."""
    text = path.read_text("utf-8")
    if not text.endswith("\n") or f"\n{delimiter}\n" in f"\n{text}":
        raise ValueError(
            f"{path.name} must end with a newline and have no line {delimiter!r}, which would "
            "end the here-document that carries it"
        )
    return text


def heredoc_command(argv: Sequence[str], script: Path, delimiter: str) -> str:
    """``argv`` (quoted for sh) with ``script`` as its stdin."""
    return f"{shlex.join(argv)} <<'{delimiter}'\n{script_text(script, delimiter)}{delimiter}\n"
