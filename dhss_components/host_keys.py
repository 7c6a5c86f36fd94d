"""The service instance's SSH host key, handed over at boot so every connection can pin it.

Manila trusts whatever answers on the instance's address (paramiko's AutoAddPolicy). Here the
stack generates an ed25519 host key, keeps it as a secret, and gives it to the instance in
its user data; cloud-init's ``ssh_keys`` writes it before sshd starts, and ``ssh_deletekeys``
and an empty ``ssh_genkeytypes`` leave it the only host key. Every share command then carries
the public half as its connection's ``host_key``: a machine that answers with another key is
refused before anything runs on it.
"""

from __future__ import annotations

import textwrap


def cloud_config(private_key_openssh: str, public_key_openssh: str) -> str:
    """The instance's user data: cloud-config that installs exactly this host key."""
    private = textwrap.indent(private_key_openssh.strip() + "\n", "    ")
    public = public_key_openssh.strip()
    return (
        "#cloud-config\n"
        "# manila-dhss: the SSH host key the share commands pin (docs: README, Safety)\n"
        "ssh_deletekeys: true\n"
        "ssh_genkeytypes: []\n"
        "ssh_keys:\n"
        "  ed25519_private: |\n"
        f"{private}"
        f"  ed25519_public: {public}\n"
    )
