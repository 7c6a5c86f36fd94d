"""A script carried inside the command that runs it, as a quoted here-document.

The share and host-port commands carry their whole script (``scripts/*.sh``) in their text,
so a change to a script shows up in ``pulumi preview`` as an update of every command that
runs it, and what a test runs is byte for byte what the program declares. The script is
read from bash's stdin (``bash -s``), so it must end with a newline and never contain a line
equal to the delimiter that ends the here-document.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from functools import cache
from pathlib import Path

SCRIPTS = Path(__file__).with_name("scripts")


PIPE_CAPACITY = 65536
"""Linux's default pipe buffer. bash passes a here-document smaller than this through a pipe,
and a bigger one through a temporary file, which a full root disk refuses: then no share
command could run, not even the delete or the check an operator needs most then."""

_COMMENT_LINE = re.compile(r"^[ \t]*#.*\n", re.MULTILINE)


@cache
def script_text(path: Path, delimiter: str) -> str:
    """The script as it is on disk without its comment lines (the file in the repository is
    their home; the carried copy must fit in a pipe, see PIPE_CAPACITY), checked to fit in a
    here-document. The first line (``#!``) stays."""
    raw = path.read_text("utf-8")
    first, _, rest = raw.partition("\n")
    text = f"{first}\n{_COMMENT_LINE.sub('', rest)}"
    if not raw.endswith("\n") or f"\n{delimiter}\n" in f"\n{text}":
        raise ValueError(
            f"{path.name} must end with a newline and have no line {delimiter!r}, which would "
            "end the here-document that carries it"
        )
    return text


def heredoc_command(argv: Sequence[str], script: Path, delimiter: str) -> str:
    """``argv`` (quoted for sh) with ``script`` as its stdin."""
    return f"{shlex.join(argv)} <<'{delimiter}'\n{script_text(script, delimiter)}{delimiter}\n"
