"""The command that waits for the service instance's sshd, with its pinned host key.

A `pulumi_command.local.Command` runs it on the machine that runs pulumi, once per server,
before the share commands dial the instance: they then get in at their first dial, and a
machine offering another host key is refused at once (scripts/ssh_ready.sh says how).
"""

from __future__ import annotations

from .script_heredoc import SCRIPTS, heredoc_command

SCRIPT_PATH = SCRIPTS / "ssh_ready.sh"
SCRIPT_DELIMITER = "DHSS_SSH_READY_SCRIPT"


def render_ssh_ready_command(host: str, timeout_seconds: int, host_key: str | None) -> str:
    """Wait up to ``timeout_seconds`` for sshd on ``host`` (offering ``host_key``, if pinned)."""
    arguments = ["--host", host, "--timeout", str(timeout_seconds)]
    if host_key:
        # A known_hosts key is "TYPE BASE64 [comment]": the comment is no part of the key.
        arguments += ["--host-key", " ".join(host_key.split()[:2])]
    return heredoc_command(["bash", "-s", "--", *arguments], SCRIPT_PATH, SCRIPT_DELIMITER)
