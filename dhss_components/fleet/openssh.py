"""One command on the service instance, with the OpenSSH client, trusting only the stack's key.

The share commands reach the instance through pulumi-command, which pins the host key the
stack made for it. A check run from here must trust exactly as much: a client config of its
own (``ssh -F``), in a private directory removed afterwards, holds a known-hosts file with
that one key under an alias and ``StrictHostKeyChecking yes``, so a machine answering with any
other key is refused at the handshake, before anything runs on it. Nothing of the operator's
``~/.ssh`` is read or written.

Authentication is the stack's: its private key (written 0600 into that directory), or its
password, handed to ssh by an askpass helper that reads it from a 0600 file there
(``SSH_ASKPASS_REQUIRE=force``, OpenSSH 8.4 and later), so it is in no command line and no
environment. A bastion is a ``ProxyJump`` host with its own key and its own pinned host key;
the password never goes to it. The OpenSSH client is what the operator already has on the
``manila-share`` host, and what they would type by hand: no new dependency.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

SSH = "ssh"
CONNECT_TIMEOUT_SECONDS = 15
"""Per dial, as pulumi-command's perDialTimeout."""
COMMAND_TIMEOUT_SECONDS = 300
"""A read-only check that takes longer than this is stuck (a hung mount, a dead disk)."""
TARGET_ALIAS = "dhss-service-instance"
BASTION_ALIAS = "dhss-bastion"


class SshUnavailable(Exception):
    """No OpenSSH client here: nothing can be checked."""


@dataclass(frozen=True)
class Bastion:
    host: str
    user: str
    port: int
    host_key: str | None
    """"TYPE BASE64" to pin, or None: the operator chose not to verify it (unverified)."""
    private_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SshTarget:
    """Where a stack's share commands run, and how they log in."""

    host: str
    user: str
    host_key: str | None
    """"TYPE BASE64" to pin, or None: the stack does not verify it (host_key: unverified)."""
    port: int = 22
    private_key: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    bastion: Bastion | None = None


@dataclass(frozen=True)
class Completed:
    exit_status: int
    stdout: str
    stderr: str


def public_key(line: str | None) -> str | None:
    """A known_hosts key is "TYPE BASE64"; a comment or a newline is no part of it."""
    if not line:
        return None
    return " ".join(line.split()[:2]) or None


class OpenSsh:
    """``with OpenSsh(target) as ssh: ssh.run(command)``; the directory goes on exit."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self._dir: Path | None = None

    def __enter__(self) -> OpenSsh:
        if shutil.which(SSH) is None:
            raise SshUnavailable(
                "the OpenSSH client (ssh) is not installed here: install openssh-client"
            )
        self._dir = Path(tempfile.mkdtemp(prefix="dhss-ssh-"))  # 0700
        try:
            self._write_config(self._dir)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> Completed:
        """Run ``command`` through the login shell of the instance; never raises for the
        remote side (ssh's own failures exit 255, with its message on stderr)."""
        assert self._dir is not None, "use OpenSsh as a context manager"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
        if self.target.password is not None:
            env |= {"SSH_ASKPASS": str(self._dir / "askpass"), "SSH_ASKPASS_REQUIRE": "force"}
        env.pop("DISPLAY", None)
        try:
            done = subprocess.run(
                [SSH, "-F", str(self._dir / "config"), TARGET_ALIAS, command],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Completed(255, "", f"ssh: no answer within {timeout:.0f} s")
        return Completed(done.returncode, done.stdout, done.stderr)

    # -- the client's configuration --------------------------------------------------------

    def _secret_file(self, directory: Path, name: str, text: str, mode: int = 0o600) -> Path:
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        return path

    def _write_config(self, directory: Path) -> None:
        target, bastion = self.target, self.target.bastion
        known = []
        options = _common(target.host, target.port, target.user, TARGET_ALIAS)
        pinned = public_key(target.host_key)
        if pinned:
            known.append(f"{TARGET_ALIAS} {pinned}")
        options += _host_key_options(directory, pinned)
        if target.private_key:
            key = self._secret_file(directory, "id", target.private_key.rstrip("\n") + "\n")
            options += ["IdentityFile " + _quoted(key), "PubkeyAuthentication yes"]
        else:
            options += ["PubkeyAuthentication no"]
        options += ["IdentitiesOnly yes", "KbdInteractiveAuthentication no"]
        if target.password is not None:
            secret = self._secret_file(directory, "password", target.password)
            askpass = f"#!/bin/sh\nexec cat {shlex.quote(str(secret))}\n"
            self._secret_file(directory, "askpass", askpass, mode=0o700)
            options += ["PasswordAuthentication yes", "BatchMode no", "NumberOfPasswordPrompts 1"]
        else:
            options += ["PasswordAuthentication no", "BatchMode yes"]
        hosts = {TARGET_ALIAS: options}
        if bastion is not None:
            options.append(f"ProxyJump {BASTION_ALIAS}")
            jump = _common(bastion.host, bastion.port, bastion.user, BASTION_ALIAS)
            jump_key = public_key(bastion.host_key)
            if jump_key:
                known.append(f"{BASTION_ALIAS} {jump_key}")
            jump += _host_key_options(directory, jump_key)
            if bastion.private_key:
                key = self._secret_file(
                    directory, "bastion_id", bastion.private_key.rstrip("\n") + "\n"
                )
                jump += ["IdentityFile " + _quoted(key)]
            # The instance's password is for the instance only.
            jump += [
                "IdentitiesOnly yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "BatchMode yes",
            ]
            hosts[BASTION_ALIAS] = jump
        (directory / "known_hosts").write_text("".join(line + "\n" for line in known))
        (directory / "config").write_text(
            "\n".join(
                f"Host {alias}\n" + "".join(f"  {option}\n" for option in host)
                for alias, host in hosts.items()
            )
        )


def _quoted(path: Path) -> str:
    return '"' + str(path).replace('"', "") + '"'


_CONFIG_UNSAFE = re.compile(r"[\s\"'%#\\\x00-\x1f\x7f]")


def _plain(what: str, value: str) -> str:
    """A value written into the client's config as it is: one that could end the line, open a
    quote, expand a ``%`` token or be read as an option by ssh is refused, never written."""
    if not value or value.startswith("-") or _CONFIG_UNSAFE.search(value):
        raise SshUnavailable(
            f"the {what} {value[:40]!r} cannot be given to the OpenSSH client as it is (a "
            "space, quote, %, # or control character, or a leading -); fix it in the stack's "
            "config or outputs"
        )
    return value


def _common(host: str, port: int, user: str, alias: str) -> list[str]:
    host, user = _plain("address", host), _plain("user", user)
    return [
        f"HostName {host}",
        f"Port {port}",
        f"User {user}",
        f"HostKeyAlias {alias}",
        f"ConnectTimeout {CONNECT_TIMEOUT_SECONDS}",
        "ConnectionAttempts 1",
        "ServerAliveInterval 15",
        "ServerAliveCountMax 3",
        "ForwardAgent no",
        "ClearAllForwardings yes",
        "LogLevel ERROR",
        "GlobalKnownHostsFile /dev/null",
    ]


def _host_key_options(directory: Path, pinned: str | None) -> list[str]:
    if pinned is None:
        # The operator's explicit choice (host_key: unverified): trust whatever answers, and
        # remember nothing.
        return ["StrictHostKeyChecking no", "UserKnownHostsFile /dev/null"]
    return [
        "StrictHostKeyChecking yes",
        f"UserKnownHostsFile {_quoted(directory / 'known_hosts')}",
        "UpdateHostKeys no",
        "CheckHostIP no",
    ]
