"""The tenants file: shared backend defaults, then one entry per tenant stack.

Each tenant is validated with the stack config's own models (``parse_stack_config``), so a
tenant that the fleet accepts is a stack config that ``pulumi up`` accepts. Problems are
reported all at once, each naming where it is in the file: ``backend.<key>`` for the shared
defaults (once, not once per tenant), ``tenants[<name>].<key>`` for a tenant's own keys.

```yaml
backend: {...}                  # dhss:backend shared by every tenant ([generic1])
openstack:cloud: devstack-admin # optional default for every tenant
tenants:
  tenant-a:                     # the stack name
    shareNetwork: {...}         # dhss:shareNetwork
    shares: [...]               # dhss:shares
    backend: {...}              # optional: overrides of the shared keys
    openstack:cloud: other      # optional
```
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import NAMESPACE, InvalidStackConfig, Problem, StackSpec, parse_stack_config
from ..operator_files import OperatorFileError, excerpt, load_yaml, read_bytes
from .options import SERVICE_NETWORK_STACK_PREFIX

CLOUD_KEY = "openstack:cloud"
TOP_LEVEL_KEYS = ("backend", CLOUD_KEY, "tenants")
TENANT_KEYS = ("shareNetwork", "shares", "backend", CLOUD_KEY)
SECRET_BACKEND_KEYS = ("service_instance_password",)
# Pulumi's rule for stack names (sdk/go/common/tokens, ParseStackName: 1-100 letters, digits,
# '-', '_', '.'). It lets "." and "..", which as the tenant's workspace directory would be the
# stacks directory or the work root itself: refused here.
STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
NOT_A_DIRECTORY_NAME = (".", "..")
MAX_SECRET_FILE_BYTES = 64 * 1024
_PASSPHRASE_WORDS = ("passphrase", "pulumi_config_passphrase")


class InvalidTenantsFile(Exception):
    """Every problem found in a tenants file, reported at once."""

    def __init__(self, path: str, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(
            f"{path}: {count} problem{'s' if count != 1 else ''}; no stack was touched:\n{lines}"
        )

    @classmethod
    def unreadable(cls, error: OperatorFileError) -> InvalidTenantsFile:
        """The file itself cannot be read: one line, where and why."""
        where = f"line {error.line}" if error.line is not None else "(file)"
        invalid = cls(error.path, [Problem(where, error.reason)])
        invalid.args = (f"{error}; no stack was touched",)
        return invalid


@dataclass(frozen=True)
class Tenant:
    """One tenant: its stack name and its stack config, validated."""

    name: str
    """The stack name (the key under ``tenants:``)."""
    backend: Mapping[str, Any]
    """dhss:backend: the shared keys, then the tenant's overrides (secret references resolved)."""
    share_network: Mapping[str, Any]
    """dhss:shareNetwork as written in the file."""
    shares: Sequence[Mapping[str, Any]]
    """dhss:shares as written in the file."""
    cloud: str | None
    """openstack:cloud, the tenant's own or the shared one."""
    spec: StackSpec = field(repr=False)
    """The validated stack config (before the fleet pins the service subnet)."""

    @property
    def has_secrets(self) -> bool:
        return any(self.backend.get(key) is not None for key in SECRET_BACKEND_KEYS)


@dataclass(frozen=True)
class TenantsFile:
    path: str
    tenants: tuple[Tenant, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tenants)

    def select(self, names: Sequence[str]) -> tuple[Tenant, ...]:
        """The named tenants in file order (all when none are named); unknown names are
        reported with the nearest known one."""
        if not names:
            return self.tenants
        problems = []
        for name in names:
            if name not in self.names:
                near = difflib.get_close_matches(name, self.names, n=1)
                hint = f"did you mean {near[0]}?" if near else f"known: {', '.join(self.names)}"
                problems.append(Problem(f"--tenant {name}", f"no such tenant in the file; {hint}"))
        if problems:
            raise InvalidTenantsFile(self.path, problems)
        wanted = set(names)
        return tuple(t for t in self.tenants if t.name in wanted)


def _unknown(where: str, key: str, known: Sequence[str]) -> Problem:
    if key.lower() in _PASSPHRASE_WORDS:
        return Problem(
            f"{where}{key}",
            "the secrets passphrase never goes in the tenants file; set "
            "PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE in the environment",
        )
    near = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {near[0]}?" if near else f"known keys: {', '.join(known)}"
    return Problem(f"{where}{excerpt(key)}", f"unknown key; {hint}")


def _resolve_secret(where: str, value: Any, base: Path) -> tuple[Any, Problem | None]:
    """A secret may be written as ``{env: NAME}`` or ``{file: PATH}`` to keep it out of the
    file; a plain string is accepted too (like manila.conf)."""
    if not isinstance(value, dict):
        return value, None
    if set(value) == {"env"}:
        name = value["env"]
        if not isinstance(name, str):
            return None, Problem(f"{where}.env", "must be the name of an environment variable")
        if name not in os.environ:
            return None, Problem(
                where, f"environment variable {excerpt(name)} is not set; export it"
            )
        return os.environ[name], None
    if set(value) == {"file"}:
        if not isinstance(value["file"], str):
            return None, Problem(f"{where}.file", "must be the path of a file")
        path = Path(os.path.expanduser(value["file"]))
        path = path if path.is_absolute() else base / path
        try:
            data = read_bytes(path, limit=MAX_SECRET_FILE_BYTES)
        except OperatorFileError as exc:
            return None, Problem(where, str(exc))
        text, problem = _secret_text(data)
        if problem is not None:
            # The file and the key, never its bytes (nor where they are): they are a secret's.
            return None, Problem(where, f"{path}: {problem}")
        # The file's own line ending is not part of the secret; anything else is.
        return text.removesuffix("\n").removesuffix("\r"), None
    return None, Problem(
        where, "write the secret as a string, {env: VARIABLE} or {file: PATH}; got a mapping"
    )


def _secret_text(data: bytes) -> tuple[str, str | None]:
    """A secret file's text, or what is wrong with it in words that quote none of it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "", "not UTF-8 text (its bytes are not shown: they are a secret's); save it as UTF-8"
    if "\x00" in text:
        return "", "holds a NUL byte: not a text file (its bytes are not shown)"
    return text.removeprefix("\ufeff"), None


def _shared_backend_problems(shared: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The backend problems of the shared section on its own, as (key, message)."""
    try:
        parse_stack_config(dict(shared), None, None)
    except InvalidStackConfig as exc:
        prefix = f"{NAMESPACE}:backend"
        return {
            (p.key, p.message)
            for p in exc.problems
            if p.key == prefix or p.key.startswith(prefix + ".")
        }
    return set()


def _where(problem: Problem, tenant: str, shared: set[tuple[str, str]]) -> tuple[str, bool]:
    """Map a stack config key (``dhss:shares[0].size``) to the file (``tenants[t].shares[0]
    .size``). Returns (key, shared): a problem the shared backend has on its own, for a key the
    tenant does not override, is reported once as ``backend.<key>``."""
    rest = problem.key.removeprefix(f"{NAMESPACE}:")
    if (problem.key, problem.message) in shared:
        return rest, True
    return f"tenants[{tenant}].{rest}", False


def parse_tenants(document: Any, path: str = "tenants.yaml") -> TenantsFile:
    """Validate a loaded tenants document; raise InvalidTenantsFile listing every problem."""
    base = Path(path).parent
    problems: list[Problem] = []
    shared_problems: dict[str, Problem] = {}
    if not isinstance(document, dict):
        raise InvalidTenantsFile(path, [Problem("(file)", "must be a mapping with tenants:")])
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            problems.append(_unknown("", str(key), TOP_LEVEL_KEYS))

    shared = document.get("backend")
    if shared is None:
        shared = {}
    if not isinstance(shared, dict):
        problems.append(Problem("backend", "must be a mapping (the dhss:backend section)"))
        shared = {}
    shared = dict(shared)
    for key in SECRET_BACKEND_KEYS:
        if key in shared:
            shared[key], problem = _resolve_secret(f"backend.{key}", shared[key], base)
            if problem:
                problems.append(problem)
    shared_cloud = document.get(CLOUD_KEY)

    raw_tenants = document.get("tenants")
    if not isinstance(raw_tenants, dict) or not raw_tenants:
        problems.append(
            Problem("tenants", "required: a mapping of stack name to the tenant's config")
        )
        raw_tenants = {}

    shared_alone = _shared_backend_problems(shared)
    tenants = []
    for name, raw in raw_tenants.items():
        where = f"tenants[{excerpt(str(name))}]"
        if not isinstance(name, str) or not STACK_NAME.fullmatch(name):
            problems.append(
                Problem(
                    where,
                    "not a stack name: use 1-100 letters, digits, '-', '_' or '.' "
                    "(the key is the tenant's stack name)",
                )
            )
            continue
        if name.startswith(SERVICE_NETWORK_STACK_PREFIX):
            problems.append(
                Problem(
                    where,
                    f"names starting with {SERVICE_NETWORK_STACK_PREFIX} are the fleet's own "
                    "read-only stacks (what a service network holds); give the tenant another name",
                )
            )
            continue
        if name in NOT_A_DIRECTORY_NAME:
            problems.append(
                Problem(
                    where,
                    f"{name!r} names a directory's parent or itself, not a workspace of its own; "
                    "give the tenant a name with a letter or digit (the key is its stack name)",
                )
            )
            continue
        if not name[0].isalnum():
            problems.append(
                Problem(
                    where,
                    f"starts with {name[0]!r}: a tenant's name must start with a letter or a "
                    "digit (a name starting with '-' would be read as an option by the pulumi "
                    "CLI it is passed to; one starting with '.' or '_' is a hidden or private "
                    "name); rename the tenant",
                )
            )
            continue
        if not isinstance(raw, dict):
            problems.append(Problem(where, "must be a mapping with shareNetwork and shares"))
            continue
        for key in raw:
            if key not in TENANT_KEYS:
                problems.append(_unknown(f"{where}.", str(key), TENANT_KEYS))
        overrides = raw.get("backend") or {}
        if not isinstance(overrides, dict):
            problems.append(Problem(f"{where}.backend", "must be a mapping of overrides"))
            overrides = {}
        overrides = dict(overrides)
        for key in SECRET_BACKEND_KEYS:
            if key in overrides:
                overrides[key], problem = _resolve_secret(
                    f"{where}.backend.{key}", overrides[key], base
                )
                if problem:
                    problems.append(problem)
        backend = {**shared, **overrides}
        cloud = raw.get(CLOUD_KEY, shared_cloud)
        if cloud is not None and not isinstance(cloud, str):
            problems.append(Problem(f"{where}.{CLOUD_KEY}", "must be a clouds.yaml entry name"))
        try:
            spec = parse_stack_config(backend, raw.get("shareNetwork"), raw.get("shares"))
        except InvalidStackConfig as exc:
            for problem in exc.problems:
                key, is_shared = _where(problem, name, shared_alone)
                if is_shared:
                    shared_problems.setdefault(key, Problem(key, problem.message))
                else:
                    problems.append(Problem(key, problem.message))
            continue
        tenants.append(
            Tenant(
                name=name,
                backend=backend,
                share_network=dict(raw["shareNetwork"]),
                shares=list(raw.get("shares") or []),
                cloud=cloud if isinstance(cloud, str) else None,
                spec=spec,
            )
        )
    problems.extend(_shared_subnet_problems(tenants))
    all_problems = list(shared_problems.values()) + problems
    if all_problems:
        raise InvalidTenantsFile(path, all_problems)
    return TenantsFile(path=path, tenants=tuple(tenants))


def _shared_subnet_problems(tenants: Sequence[Tenant]) -> list[Problem]:
    """Two tenants on one service network with one tenant subnet would claim the same Manila
    service subnet name (it carries the tenant subnet's id) and the same router interface."""
    problems = []
    owner: dict[tuple[str | None, str], str] = {}
    for tenant in tenants:
        backend = tenant.spec.backend
        if not backend.network_mode.service_subnet:
            continue
        key = (backend.service_network_id, tenant.spec.share_network.neutron_subnet_id)
        if backend.service_network_id is not None and key in owner:
            problems.append(
                Problem(
                    f"tenants[{tenant.name}].shareNetwork.neutron_subnet_id",
                    f"tenant {owner[key]} already uses subnet {key[1]} on service network "
                    f"{key[0]}; one stack per tenant share network",
                )
            )
        owner.setdefault(key, tenant.name)
    return problems


def load_tenants_file(path: str | os.PathLike[str]) -> TenantsFile:
    """Read and validate a tenants file."""
    try:
        document = load_yaml(path)
    except OperatorFileError as exc:
        raise InvalidTenantsFile.unreadable(exc) from None
    return parse_tenants(document, str(path))


def workspace_dir(stacks_dir: Path, tenant: str) -> Path:
    """The tenant's workspace: always a directory of its own directly under ``stacks_dir``."""
    if not STACK_NAME.fullmatch(tenant) or not tenant[0].isalnum():
        raise ValueError(f"{excerpt(tenant)!r} is not a tenant name the tenants file accepts")
    return stacks_dir / tenant
