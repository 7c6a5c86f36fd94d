"""Install the stand-in as ``<root>/bin/pulumi`` with its settings."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
CLIENT = Path(__file__).with_name("client.py")


def install(
    root: Path, settings: dict[str, Any] | None = None, *, socket: Path | None = None
) -> Path:
    """Write ``bin/pulumi`` and ``standin.json``.

    With ``socket``, ``bin/pulumi`` is a thin client of a running stand-in server (see
    server.py); without, it runs the whole stand-in in its own interpreter, as a CLI would.
    """
    (root / "bin").mkdir(parents=True, exist_ok=True)
    script = root / "bin" / "pulumi"
    python = shlex.quote(sys.executable)
    env = f"STANDIN_ROOT={shlex.quote(str(root))}"
    if socket is None:
        command = f'PYTHONPATH={shlex.quote(str(REPO))} exec {python} -m tests.fleet.standin "$@"'
    else:
        env += f" STANDIN_SOCKET={shlex.quote(str(socket))}"
        command = f'exec {python} -S -I {shlex.quote(str(CLIENT))} "$@"'
    script.write_text(f"#!/bin/sh\n{env} {command}\n")
    script.chmod(0o755)
    write_settings(root, settings or {})
    return root


def write_settings(root: Path, settings: dict[str, Any]) -> None:
    (root / "standin.json").write_text(json.dumps(settings, indent=2))
