"""What the tests that run a real OpenSSH sshd on a loopback port share: the binary, a free
port, and key pairs made the way an operator makes them."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path, key_type: str = "ed25519") -> str:
    """A new key pair at ``path`` (no passphrase); its public key as "TYPE BASE64"."""
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])
