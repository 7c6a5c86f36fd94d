"""What the stand-in keeps between runs, laid out like the CLI's DIY (file) backend.

``<backend>/.pulumi/stacks/<project>/<stack>.json``   the checkpoint (resources, outputs)
``<backend>/.pulumi/locks/<project>/<stack>/...``      the update lock
``<backend>/.pulumi/history/<project>/<stack>/...``    one file per update
``<work dir>/Pulumi.<stack>.yaml``                     config, secrets encrypted with a key
                                                        from the passphrase and the salt

Only standard-library imports: most CLI calls (version, config, stack output) must start
fast, as the real CLI does.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

DATETIME = "%Y-%m-%dT%H:%M:%S.000000Z"
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def strip_secrets(value: Any) -> Any:
    """A JSON value with every secret reduced to its marker (to compare inputs across runs
    whatever the secret's encryption)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return SECRET_SIG
        return {k: strip_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_secrets(v) for v in value]
    return value


class CliError(Exception):
    """Printed as ``error: <message>`` on stderr; the process exits with ``code``, like the CLI
    (``cmd.ExitCodeFor``: 1 for most failures, 6 for a stack that does not exist)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def now() -> str:
    return time.strftime(DATETIME, time.gmtime())


# -- the backend ------------------------------------------------------------------------------


def backend_dir(cwd: Path, env: dict[str, str], root: Path) -> tuple[str, Path]:
    """(URL, directory) of the backend: PULUMI_BACKEND_URL, else the project's backend.url.

    file:// is a directory, as for the CLI; s3:// and Pulumi Cloud URLs are kept in
    directories under the stand-in's root (the object store it plays).
    """
    url = env.get("PULUMI_BACKEND_URL")
    if not url:
        project = yaml.safe_load((cwd / "Pulumi.yaml").read_text()) or {}
        url = (project.get("backend") or {}).get("url")
    if not url:
        raise CliError("no backend: run `pulumi login` or set backend.url in Pulumi.yaml")
    if url.startswith("file://"):
        path = Path(os.path.expanduser(url.removeprefix("file://")))
        if not path.is_dir():
            raise CliError(f"could not create backend: {path}: no such directory")
        return url, path
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        path = root / "object-store" / parsed.netloc / parsed.path.strip("/")
    elif parsed.scheme == "https":
        if "PULUMI_ACCESS_TOKEN" not in env:
            raise CliError(f"PULUMI_ACCESS_TOKEN must be set for login to {url}")
        path = root / "pulumi-cloud" / parsed.netloc
    else:
        raise CliError(f"unsupported backend URL {url!r}")
    path.mkdir(parents=True, exist_ok=True)
    return url, path


def project_name(cwd: Path) -> str:
    project = yaml.safe_load((cwd / "Pulumi.yaml").read_text()) or {}
    return str(project["name"])


# -- secrets ----------------------------------------------------------------------------------


def passphrase(env: dict[str, str]) -> str | None:
    if "PULUMI_CONFIG_PASSPHRASE" in env:
        return env["PULUMI_CONFIG_PASSPHRASE"]
    path = env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if path:
        return Path(path).read_text().rstrip("\n")
    return None


NO_PASSPHRASE = (
    'constructing secrets manager of type "passphrase": passphrase must be set with '
    "PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables"
)
WRONG_PASSPHRASE = (
    "incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE to the correct passphrase or "
    "set PULUMI_CONFIG_PASSPHRASE_FILE to a file containing the passphrase"
)


def _keystream(key: bytes, length: int) -> bytes:
    blocks = (hashlib.sha256(key + i.to_bytes(4, "big")).digest() for i in range(length // 32 + 1))
    return b"".join(blocks)[:length]


@dataclass
class Crypter:
    key: bytes

    @classmethod
    def for_salt(cls, salt: str, env: dict[str, str]) -> Crypter:
        secret = passphrase(env)
        if secret is None:
            raise CliError(NO_PASSPHRASE)
        _, salt_b64, _, check = salt.split(":")
        key = hashlib.sha256(secret.encode() + base64.b64decode(salt_b64)).digest()
        if hashlib.sha256(key).hexdigest()[:16] != check:
            raise CliError(WRONG_PASSPHRASE)
        return cls(key)

    @staticmethod
    def new_salt(env: dict[str, str]) -> str:
        secret = passphrase(env)
        if secret is None:
            raise CliError(NO_PASSPHRASE)
        raw = os.urandom(8)
        key = hashlib.sha256(secret.encode() + raw).digest()
        return f"v1:{base64.b64encode(raw).decode()}:v1:{hashlib.sha256(key).hexdigest()[:16]}"

    def encrypt(self, text: str) -> str:
        data = text.encode()
        mixed = bytes(a ^ b for a, b in zip(data, _keystream(self.key, len(data)), strict=True))
        return "v1:" + base64.b64encode(mixed).decode()

    def decrypt(self, value: str) -> str:
        data = base64.b64decode(value.removeprefix("v1:"))
        return bytes(
            a ^ b for a, b in zip(data, _keystream(self.key, len(data)), strict=True)
        ).decode()


# -- one stack ---------------------------------------------------------------------------------


class Stacks:
    """The stacks of one project in one backend."""

    def __init__(self, backend: Path, project: str, url: str) -> None:
        self.backend = backend
        self.project = project
        self.url = url
        self.meta = backend / ".pulumi"

    def path(self, stack: str) -> Path:
        return self.meta / "stacks" / self.project / f"{stack}.json"

    def exists(self, stack: str) -> bool:
        return self.path(stack).exists()

    def names(self) -> list[str]:
        folder = self.meta / "stacks" / self.project
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def require(self, stack: str) -> None:
        if not self.exists(stack):
            raise CliError(f"no stack named '{stack}' found", code=6)

    def init(self, stack: str, secrets_provider: str, salt: str | None) -> None:
        if self.exists(stack):
            raise CliError(f"stack '{stack}' already exists")
        self.write(
            stack,
            {
                "resources": [],
                "secrets_providers": {"type": secrets_provider, "state": {"salt": salt}},
            },
        )

    def read(self, stack: str) -> dict[str, Any]:
        self.require(stack)
        data: dict[str, Any] = json.loads(self.path(stack).read_text())
        latest: dict[str, Any] = data["checkpoint"]["latest"]
        return latest

    def write(self, stack: str, latest: dict[str, Any]) -> None:
        path = self.path(stack)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"version": 3, "checkpoint": {"stack": stack, "latest": latest}}
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(document, indent=2))
        os.replace(temporary, path)

    # -- the lock ---------------------------------------------------------------------------

    def lock(self, stack: str) -> Path:
        folder = self.meta / "locks" / self.project / stack
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "update.json"
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            held = json.loads(path.read_text() or "{}")
            raise CliError(
                "the stack is currently locked by 1 lock(s). Either wait for the other "
                "process(es) to end or delete the lock file with `pulumi cancel`.\n"
                f"  {self.url}/.pulumi/locks/{self.project}/{stack}/update.json: created by "
                f"{held.get('user', '?')}@{held.get('host', '?')} (pid {held.get('pid', '?')}) "
                f"at {held.get('time', '?')}"
            ) from None
        with os.fdopen(fd, "w") as file:
            json.dump(
                {
                    "pid": os.getpid(),
                    "user": getpass.getuser(),
                    "host": socket.gethostname(),
                    "time": now(),
                },
                file,
            )
        return path

    # -- history ------------------------------------------------------------------------------

    def add_history(self, stack: str, entry: dict[str, Any]) -> None:
        folder = self.meta / "history" / self.project / stack
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stack}-{time.time_ns()}.history.json").write_text(json.dumps(entry))

    def history(self, stack: str) -> list[dict[str, Any]]:
        folder = self.meta / "history" / self.project / stack
        files = sorted(folder.glob("*.history.json"), reverse=True) if folder.is_dir() else []
        entries = [json.loads(f.read_text()) for f in files]
        for number, entry in enumerate(reversed(entries), start=1):
            entry["version"] = number
        return entries


# -- the stack's config file in the work dir -------------------------------------------------


class StackConfig:
    """``Pulumi.<stack>.yaml``: plain values, and secrets as ``{secure: v1:...}``."""

    def __init__(self, cwd: Path, stack: str, stacks: Stacks, env: dict[str, str]) -> None:
        self.path = cwd / f"Pulumi.{stack.rsplit('/', maxsplit=1)[-1]}.yaml"
        self.stack = stack
        self.stacks = stacks
        self.env = env
        self.data: dict[str, Any] = {}
        if self.path.exists():
            self.data = yaml.safe_load(self.path.read_text()) or {}

    def _salt(self) -> str:
        salt = self.data.get("encryptionsalt")
        if not salt:
            # Like the CLI: a work dir without the stack's file gets the salt from the state.
            state = self.stacks.read(self.stack)["secrets_providers"]
            salt = state.get("state", {}).get("salt")
            if not salt:
                raise CliError(NO_PASSPHRASE)
            self.data["encryptionsalt"] = salt
        return str(salt)

    def crypter(self) -> Crypter:
        return Crypter.for_salt(self._salt(), self.env)

    def values(self, *, show_secrets: bool) -> dict[str, tuple[str, bool]]:
        """key -> (value, secret); secrets decrypted only when asked."""
        result = {}
        config = self.data.get("config") or {}
        crypter = None
        for key, value in config.items():
            if isinstance(value, dict) and "secure" in value:
                if show_secrets:
                    crypter = crypter or self.crypter()
                    result[key] = (crypter.decrypt(value["secure"]), True)
                else:
                    result[key] = ("[secret]", True)
            else:
                result[key] = (str(value), False)
        return result

    def set(self, key: str, value: str, *, secret: bool) -> None:
        config = self.data.setdefault("config", {})
        config[key] = {"secure": self.crypter().encrypt(value)} if secret else value

    def remove(self, key: str) -> None:
        (self.data.get("config") or {}).pop(key, None)

    def save(self) -> None:
        self.path.write_text(yaml.safe_dump(self.data, sort_keys=True))
