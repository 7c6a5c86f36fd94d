"""The stand-in as a long-running server, so each CLI call costs a tiny client, not a fresh
interpreter importing grpc and pulumi (which takes seconds on a busy 2-core machine).

``bin/pulumi`` then runs ``client.py``, which sends its argv, cwd and environment over a Unix
socket and relays the answer: stdout and stderr line by line as they come, then the exit
status. The SDK still runs a real executable, with real pipes, environment and exit codes.
Run: ``python -m tests.fleet.standin.server SOCKET``.
"""

from __future__ import annotations

import json
import socketserver
import sys
import threading
from pathlib import Path
from typing import IO, Any

from . import cli, operations  # noqa: F401 (imported once, up front: that is the point)


class _Relay:
    """A text stream that sends each write as framed lines (``o``/``e`` + text)."""

    def __init__(self, wfile: IO[bytes], kind: bytes, lock: threading.Lock) -> None:
        self.wfile = wfile
        self.kind = kind
        self.lock = lock
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._send(line + "\n")
        return len(text)

    def _send(self, text: str) -> None:
        payload = json.dumps(text).encode()
        with self.lock:
            self.wfile.write(self.kind + b" " + payload + b"\n")
            self.wfile.flush()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.pending:
            self._send(self.pending)
            self.pending = ""


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        request: dict[str, Any] = json.loads(self.rfile.readline())
        lock = threading.Lock()
        wfile: IO[bytes] = self.wfile  # type: ignore[assignment]
        out = _Relay(wfile, b"o", lock)
        err = _Relay(wfile, b"e", lock)
        try:
            code = cli.run(
                request["argv"],
                cwd=Path(request["cwd"]),
                env=request["env"],
                stdout=out,  # type: ignore[arg-type]
                stderr=err,  # type: ignore[arg-type]
            )
        except Exception as exc:  # a bug in the stand-in: say so, like a CLI panic
            err.write(f"panic: stand-in: {exc.__class__.__name__}: {exc}\n")
            code = 2
        out.close()
        err.close()
        with lock:
            self.wfile.write(b"x " + str(code).encode() + b"\n")
            self.wfile.flush()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def serve(path: str) -> None:
    with _Server(path, _Handler) as server:
        print("ready", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1])
