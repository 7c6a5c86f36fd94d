"""The stand-in's Nova: server identities, and what answers a share command's SSH connection.

- A server an ``up`` creates gets a new id, as Nova gives one (a fresh UUID), so a server made
  again after a loss is told apart from the old one.
- A volume attachment's id is the provider's, ``<server id>/<volume id>``
  (terraform-provider-openstack v3.4.0, ``resource_openstack_compute_volume_attach_v2.go``): a
  new server means new attachments, and so new triggers for the share commands.
- ``deleted_servers`` in standin.json lists servers deleted out of band (``openstack server
  delete``): a refresh drops them, and the attachments Nova detached with them, from the
  stack; nothing answers at their addresses any more. ``silent_servers``: servers Nova still
  has whose sshd never answers (their host died, or they hang at boot).
- Every remote command the engine runs (a create, an update, or a delete with the inputs the
  state holds for it) dials its ``connection.host``. The stack's server that holds that
  address and exists runs it, if it offers the pinned host key (cloud-init installed the key
  from the server's user data). When none answers, the command costs its dial bound (every
  one of ``dialErrorLimit`` redials, at the pace ``blueprint.DIAL_PAUSE_SECONDS`` stands for)
  and fails, as pulumi-command's ``Connection.Dial`` does
  (``provider/pkg/provider/remote/connection.go``). Each run is appended to
  ``<root>/ssh.jsonl``, for the tests.

Addresses are a stack's own: each stack's program runs in a simulated cloud of its own, so a
server answers only its own stack's commands.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dhss_components.blueprint import DIAL_PAUSE_SECONDS

from .state import SECRET_SIG, SECRET_SIG_KEY

INSTANCE = "openstack:compute/instance:Instance"
VOLUME_ATTACH = "openstack:compute/volumeAttach:VolumeAttach"
REMOTE_COMMAND = "command:remote:Command"
DEFAULT_DIAL_ERROR_LIMIT = 10
"""pulumi-command's default (connection.go, ``dialErrorDefault``)."""
_HOST_KEY = re.compile(r"^\s*ed25519_public:\s*(\S+\s+\S+)", re.M)


def new_server_id() -> str:
    return str(uuid.uuid4())


def attachment_id(inputs: Mapping[str, Any]) -> str:
    return f"{inputs.get('instanceId', '')}/{inputs.get('volumeId', '')}"


def plain(value: Any) -> Any:
    """A value with Pulumi's secret wrapping removed."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return plain(value.get("value"))
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def key_of(line: str | None) -> str | None:
    """``TYPE BASE64`` of a public key line (a comment or newline is no part of the key)."""
    if not line:
        return None
    return " ".join(line.split()[:2]) or None


@dataclass(frozen=True)
class Server:
    id: str
    addresses: frozenset[str]
    host_key: str | None
    """What its sshd offers: the key its user data gave cloud-init."""

    @classmethod
    def from_outputs(cls, server_id: str, outputs: Mapping[str, Any]) -> Server:
        outputs = plain(outputs)
        addresses = {n.get("fixedIpV4", "") for n in outputs.get("networks") or []}
        addresses.add(outputs.get("accessIpV4", ""))
        found = _HOST_KEY.search(str(outputs.get("userData") or ""))
        return cls(server_id, frozenset(a for a in addresses if a), found and key_of(found[1]))


@dataclass(frozen=True)
class ScriptCall:
    """What a share command's text asks of share.sh: its action and the share's name."""

    action: str
    share: str

    @classmethod
    def of(cls, command: str) -> ScriptCall:
        words = shlex.split(command.split("\n", 1)[0].split("<<", 1)[0])
        action = words[words.index("--") + 1] if "--" in words else "?"
        share = words[words.index("--name") + 1] if "--name" in words else "?"
        return cls(action, share)


class Connections:
    """The servers that answer one stack's remote commands during one operation."""

    def __init__(self, root: Path, stack: str, settings: Mapping[str, Any]) -> None:
        self.root = root
        self.stack = stack
        self.silent = deleted_servers(settings) | frozenset(settings.get("silent_servers", []))
        self.servers: dict[str, Server] = {}

    def server_exists(self, server: Server) -> None:
        if server.id not in self.silent:
            self.servers[server.id] = server

    def server_gone(self, server_id: str) -> None:
        self.servers.pop(server_id, None)

    def run(self, urn: str, step: str, inputs: Mapping[str, Any]) -> str | None:
        """Run the command's ``step`` (create, update, delete); its failure message, or None."""
        inputs = plain(inputs)
        # pulumi-command runs `create` again on an update that has no `update` of its own.
        text = str(inputs.get(step) or (inputs.get("create") if step == "update" else "") or "")
        if not text:
            return None  # a command without that step runs nothing
        connection = inputs.get("connection") or {}
        host = str(connection.get("host", ""))
        pinned = key_of(connection.get("hostKey"))
        limit = int(connection.get("dialErrorLimit", DEFAULT_DIAL_ERROR_LIMIT))
        answering = [s for s in self.servers.values() if host in s.addresses]
        server = answering[0] if answering else None
        error = None
        seconds = 0
        if server is None:
            seconds = max(limit, 1) * DIAL_PAUSE_SECONDS
            error = (
                f"ssh: dial tcp {host}:22: connect: no route to host (gave up after {limit} "
                "dials: dialErrorLimit)"
            )
        elif pinned is not None and server.host_key != pinned:
            error = "ssh: handshake failed: ssh: host key mismatch"
        call = ScriptCall.of(text)
        self._record(
            {
                "stack": self.stack,
                "urn": urn,
                "step": step,
                "host": host,
                "server": server.id if server else None,
                "action": call.action,
                "share": call.share,
                "dial_seconds": seconds,
                "error": error,
            }
        )
        return error

    def _record(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry) + "\n").encode()
        fd = os.open(self.root / "ssh.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def deleted_servers(settings: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(settings.get("deleted_servers", []))
