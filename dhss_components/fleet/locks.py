"""One fleet run at a time per tenant on this machine: a lock file per tenant.

A tenant's run writes its stack's config (``pulumi config set-all`` into the workspace's
``Pulumi.<stack>.yaml``), then runs the operation with it. Pulumi's own stack lock covers the
operation only (``up``, ``refresh``, ``destroy``; a preview takes none) and not the config
before it: two fleet runs on one machine could set two tenants files' configs in turn, and the
first ``up`` would deploy the second file's config. So every run that writes a tenant's config
or changes its stack holds that tenant's lock (an exclusive ``flock`` on
``locks/<tenant>.lock`` under the work root) from the config to the end of the operation. Other
tenants are not held back; the lock goes with the process, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCKS_DIR = "locks"


class Busy(Exception):
    """Another process holds the lock; ``holder`` is what it wrote there (its pid)."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path} is held by {holder or 'another process'}")


@contextmanager
def exclusive(path: Path, *, wait: bool) -> Iterator[None]:
    """Hold ``path``'s lock; without ``wait``, raise Busy at once when another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            file.seek(0)
            raise Busy(path, file.read(100).strip()) from None
        try:
            file.seek(0)
            file.truncate()
            file.write(f"pid {os.getpid()}\n")
            file.flush()
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)
