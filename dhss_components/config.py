"""The stack config contract (namespace ``dhss``), validated before any resource is declared.

Inner keys are Manila's own option and API field names, so an operator can paste the
``[generic1]`` section of ``manila.conf`` and think in Manila's terms. Defaults are Manila's.
Every problem in a config is reported at once, each naming its key and the fix.
"""

from __future__ import annotations

import base64
import difflib
import ipaddress
import os
import re
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)

NAMESPACE = "dhss"
GENERIC_DRIVER = "manila.share.drivers.generic.GenericShareDriver"
OVS_DRIVER = "manila.network.linux.interface.OVSInterfaceDriver"
BRIDGE_DRIVER = "manila.network.linux.interface.BridgeInterfaceDriver"
NOOP_DRIVER = "manila.network.linux.interface.NoopInterfaceDriver"

# Options of Manila's generic driver (and the service instance module) that exist in Manila
# but that this program does not implement yet. They are refused by name, so an operator who
# pastes a manila.conf section learns exactly what is missing instead of "unknown key".
UNSUPPORTED_MANILA_OPTIONS: dict[str, str] = {
    "service_instance_boot_from_volume": "boot from volume is not implemented yet",
    "service_instance_boot_volume_size": "boot from volume is not implemented yet",
    "service_instance_boot_volume_type": "boot from volume is not implemented yet",
    "service_instance_base_boot_volume_id": "boot from volume is not implemented yet",
    "service_instance_boot_volume_delete_on_termination": "boot from volume is not implemented yet",
    "service_instance_boot_volume_name_template": "boot from volume is not implemented yet",
    "volume_snapshot_name_template": "share snapshots are not implemented yet",
    "share_helpers": "the NFS and CIFS helpers are built in; custom helpers are not supported",
    "max_time_to_create_volume": "Cinder waits are done by the provider (custom timeouts)",
    "max_time_to_extend_volume": "Cinder waits are done by the provider (custom timeouts)",
    "service_instance_name_or_id": "it belongs to driver_handles_share_servers = False",
    "service_net_name_or_ip": "it belongs to driver_handles_share_servers = False",
    "tenant_net_name_or_ip": "it belongs to driver_handles_share_servers = False",
    "smb_template_config_path": "Manila no longer uses it either",
    "service_instance_smb_config_path": "Manila no longer uses it either",
}

# Options that Manila has and that need no key here, because the behaviour is always on.
ALWAYS_ON_MANILA_OPTIONS: dict[str, str] = {
    "limit_ssh_access": ("SSH is always limited to where the commands come from; remove the key"),
    "set_zero_reserved_blocks": (
        "reserved blocks are always set to 0 (tune2fs -m 0); remove the key"
    ),
}

SHARE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SSH_KEY_TYPES = (
    "ssh-rsa",
    "ssh-ed25519",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


LITERAL_HINTS = {
    "access_type": (
        "the generic driver grants ip rules only (Manila's NFSHelper and "
        "CIFSHelperIPAccess); use access_type: ip"
    ),
    "access_level": "use rw or ro",
    "share_volume_fstype": "Manila's generic driver supports ext4 and ext3 (resize2fs)",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _uuid(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an OpenStack id (a UUID such as "
            "2c745913-7766-45b3-abfc-33a527e5185b); copy it from "
            "`openstack ... show -f value -c id`"
        ) from None


SshAddress = Literal["service", "admin", "tenant"]


class SshProxy(_Strict):
    """Ours: a bastion the share commands' SSH goes through (pulumi-command's proxy)."""

    host: str
    user: str
    port: StrictInt = Field(default=22, gt=0, lt=65536)
    path_to_private_key: str | None = None
    """Defaults to the backend's path_to_private_key."""
    source_cidrs: tuple[str, ...]
    """Where the bastion's connections reach the service instance from (for its group)."""

    @field_validator("source_cidrs")
    @classmethod
    def _sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _cidr_list(value)


def _cidr_list(value: tuple[str, ...]) -> tuple[str, ...]:
    result = []
    for cidr in value:
        try:
            result.append(str(ipaddress.ip_network(cidr, strict=True)))
        except ValueError:
            raise ValueError(
                f"{cidr!r} is not a network in CIDR form; write e.g. 192.0.2.10/32"
            ) from None
    if not result:
        raise ValueError("must list at least one network, e.g. [192.0.2.10/32]")
    return tuple(result)


class Backend(_Strict):
    """The backend section of manila.conf, e.g. ``[generic1]``."""

    share_backend_name: str | None = None
    driver_handles_share_servers: StrictBool
    share_driver: str = GENERIC_DRIVER
    service_image_name: str = "manila-service-image"
    service_instance_user: str
    service_instance_password: str | None = None
    path_to_public_key: str | None = "~/.ssh/id_rsa.pub"
    path_to_private_key: str | None = None
    manila_service_keypair_name: str = "manila-service"
    service_instance_name_template: str = "%s"
    service_instance_flavor_id: str = "100"
    service_instance_security_group: str = "manila-service"
    service_network_id: str | None = None
    service_network_name: str = "manila_service_network"
    service_network_host: str | None = None
    service_network_cidr: str = "10.254.0.0/16"
    service_network_division_mask: StrictInt = 28
    connect_share_server_to_tenant_network: StrictBool = False
    admin_network_id: str | None = None
    admin_subnet_id: str | None = None
    interface_driver: str = OVS_DRIVER
    ovs_integration_bridge: str = "br-int"
    share_mount_path: str = "/shares"
    share_volume_fstype: Literal["ext4", "ext3"] = "ext4"
    cinder_volume_type: str | None = None
    volume_name_template: str = "manila-share-%s"
    max_time_to_build_instance: StrictInt = Field(default=300, gt=0)
    max_time_to_attach: StrictInt = Field(default=120, gt=0)
    backend_availability_zone: str | None = None
    storage_availability_zone: str | None = None
    # Ours, not Manila's: a destroy or a replacement never deletes a share's volume unless
    # the operator sets this to false.
    protect_volumes: StrictBool = True
    # Ours: which of the instance's addresses the share commands SSH to. Default: Manila's
    # choice, the service address, else the admin one.
    ssh_address: SshAddress | None = None
    # Ours: a bastion in between.
    ssh_proxy: SshProxy | None = None
    # Ours: where the share commands' SSH comes from, when the program cannot know it (the
    # Noop interface driver). Default: the host port, the admin subnet, or the bastion's.
    ssh_source_cidrs: tuple[str, ...] | None = None

    @field_validator("ssh_source_cidrs")
    @classmethod
    def _ssh_sources(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else _cidr_list(value)

    @property
    def uses_service_network(self) -> bool:
        """False only in Manila's mode C (direct + admin), which has no service subnet."""
        return not (self.connect_share_server_to_tenant_network and self.admin_network_id)

    @property
    def effective_ssh_address(self) -> SshAddress:
        if self.ssh_address:
            return self.ssh_address
        return "service" if self.uses_service_network else "admin"

    @field_validator("driver_handles_share_servers")
    @classmethod
    def _dhss_true(cls, value: bool) -> bool:
        if value is not True:
            raise ValueError(
                "must be true: this program builds the share server that Manila's generic "
                "driver builds with driver_handles_share_servers = True; set it to true"
            )
        return value

    @field_validator("share_driver")
    @classmethod
    def _generic_driver(cls, value: str) -> str:
        if value != GENERIC_DRIVER:
            raise ValueError(
                f"{value!r} is not Manila's generic driver; this program only builds what "
                f"{GENERIC_DRIVER} builds: set it to that or remove the key"
            )
        return value

    @field_validator("service_network_id", "admin_network_id", "admin_subnet_id")
    @classmethod
    def _ids(cls, value: str | None) -> str | None:
        return _uuid(value)

    @field_validator("service_network_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a network in CIDR form ({exc}); use e.g. 10.254.0.0/16"
            ) from None
        if network.version != 4:
            raise ValueError(
                f"{value!r} is IPv6; Manila's service subnets are IPv4: use e.g. 10.254.0.0/16"
            )
        return str(network)

    @field_validator("interface_driver")
    @classmethod
    def _interface_driver(cls, value: str) -> str:
        known = (OVS_DRIVER, BRIDGE_DRIVER, NOOP_DRIVER)
        if value not in known:
            raise ValueError(
                f"{value!r} is not one of Manila's interface drivers: use one of {', '.join(known)}"
            )
        return value

    @field_validator("share_mount_path")
    @classmethod
    def _mount_path(cls, value: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9._/-]*", value) or "//" in value or "/../" in value + "/":
            raise ValueError(
                f"{value!r} is not an absolute path of plain characters; use e.g. /shares"
            )
        return value.rstrip("/") or "/"

    @field_validator("volume_name_template", "service_instance_name_template")
    @classmethod
    def _template(cls, value: str) -> str:
        if value.count("%s") != 1 or re.search(r"%(?!s)", value):
            raise ValueError(
                f"{value!r} must contain exactly one %s (like Manila's default) and no other %"
            )
        return value

    @field_validator("service_instance_security_group")
    @classmethod
    def _security_group(cls, value: str) -> str:
        if not value:
            raise ValueError(
                "must not be empty: this program always declares the service instance's "
                "security group (least privilege); give it a name such as manila-service"
            )
        return value


class ShareNetwork(_Strict):
    """The tenant's share network (its Neutron network and subnet), as in Manila's API."""

    neutron_net_id: str
    neutron_subnet_id: str
    # Ours: a service subnet CIDR allocated elsewhere (the fleet command allocates one per
    # tenant so that parallel stacks on one service network never overlap).
    service_subnet_cidr: str | None = None

    @field_validator("neutron_net_id", "neutron_subnet_id")
    @classmethod
    def _ids(cls, value: str) -> str:
        result = _uuid(value)
        assert result is not None
        return result

    @field_validator("service_subnet_cidr")
    @classmethod
    def _cidr(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.IPv4Network(value, strict=True))
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not an IPv4 network in CIDR form ({exc}); use e.g. 10.254.0.16/28"
            ) from None


class AccessRule(_Strict):
    """One access rule, with Manila's API field names."""

    access_type: Literal["ip"]
    access_to: str
    access_level: Literal["rw", "ro"] = "rw"

    @field_validator("access_to")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address or CIDR; write e.g. 10.0.0.5 or 10.0.0.0/24"
            ) from None
        if "/" in value and str(network.network_address) != value.split("/", maxsplit=1)[0]:
            raise ValueError(
                f"{value!r} has host bits set; write the network, {network.with_prefixlen}"
            )
        return value

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.access_to, strict=False)


class ShareSpec(_Strict):
    """One share: name, size, protocol and access rules (Manila's API field names)."""

    name: str
    size: StrictInt
    share_proto: Literal["NFS", "CIFS"]
    access_rules: tuple[AccessRule, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SHARE_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a share name: use 1-63 lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit (it becomes the export path and the CIFS "
                "share name)"
            )
        return value

    @field_validator("size")
    @classmethod
    def _size(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"{value!r} is not a positive number of GiB; use e.g. 10")
        return value

    @field_validator("share_proto", mode="before")
    @classmethod
    def _proto(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() in ("NFS", "CIFS"):
            return value.upper()
        raise ValueError(f"{value!r} is not a protocol this driver serves: use NFS or CIFS")


# ---------------------------------------------------------------------------------------
# The validated result


@dataclass(frozen=True)
class StackSpec:
    """Everything the program needs, validated; plain data (no pydantic past this point)."""

    backend: Backend
    share_network: ShareNetwork
    shares: tuple[ShareSpec, ...]
    public_key: str | None
    private_key: str | None = field(repr=False)
    proxy_private_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Problem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class InvalidStackConfig(Exception):
    """Every problem found in a stack's config, reported at once."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"the stack config has {len(self.problems)} problem"
            f"{'s' if len(self.problems) != 1 else ''}; nothing was declared:\n{lines}"
        )


def _nearest(key: str, known: Sequence[str]) -> str | None:
    match = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if match:
        return match[0]
    # Manila's own near-misses (e.g. the seed's service_password) share a distinctive word.
    words = [w for w in key.split("_") if len(w) > 3]
    for candidate in known:
        if words and all(w in candidate for w in words):
            return candidate
    return None


def _key_problems(section: str, raw: Mapping[str, Any], model: type[BaseModel]) -> list[Problem]:
    """Unknown, unsupported and always-on keys, with the nearest known key suggested."""
    problems = []
    known = list(model.model_fields)
    for key in raw:
        if key in known:
            continue
        where = f"{section}.{key}"
        if key in UNSUPPORTED_MANILA_OPTIONS:
            problems.append(
                Problem(
                    where,
                    f"Manila's option {key} is not supported yet "
                    f"({UNSUPPORTED_MANILA_OPTIONS[key]}); "
                    "remove the key",
                )
            )
        elif key in ALWAYS_ON_MANILA_OPTIONS:
            problems.append(Problem(where, ALWAYS_ON_MANILA_OPTIONS[key]))
        else:
            nearest = _nearest(key, known)
            hint = f"did you mean {nearest}?" if nearest else f"known keys: {', '.join(known)}"
            problems.append(Problem(where, f"unknown key; {hint}"))
    return problems


def _pydantic_problems(section: str, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        if item["type"] == "extra_forbidden":
            continue  # reported by _key_problems with a suggestion
        location = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"]
        )
        key = f"{section}{location}"
        message = item["msg"].removeprefix("Value error, ")
        field_name = str(item["loc"][-1]) if item["loc"] else ""
        if item["type"] == "missing":
            message = "required; set it (see the README's config reference)"
        elif item["type"] == "literal_error":
            message = f"{item.get('input')!r}: {LITERAL_HINTS.get(field_name, message)}"
        elif item["type"] in ("bool_type", "int_type"):
            message = f"{item.get('input')!r}: {message}"
        problems.append(Problem(key, message))
    return problems


def _read_public_key(path: str) -> tuple[str | None, str | None]:
    """(key text, problem) for path_to_public_key."""
    file = Path(os.path.expanduser(path))
    try:
        text = file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None, f"{path}: no such file; create a key pair (ssh-keygen) or fix the path"
    except (PermissionError, IsADirectoryError, UnicodeDecodeError, OSError) as exc:
        return None, f"{path}: cannot be read ({exc.__class__.__name__}); fix its permissions"
    parts = text.split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        return None, (
            f"{path} is not an SSH public key (expected 'ssh-ed25519 AAAA... comment'); "
            "point it at the .pub file"
        )
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4 : 4 + length].decode("ascii")
    except (ValueError, struct.error, UnicodeDecodeError):
        return None, f"{path} is not an SSH public key (its base64 body is damaged)"
    if embedded != parts[0]:
        return None, f"{path} is not an SSH public key (it says {parts[0]} but holds {embedded})"
    return " ".join(parts[:2]), None


def _read_private_key(path: str) -> tuple[str | None, str | None]:
    file = Path(os.path.expanduser(path))
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"{path}: no such file; fix the path to the private half of the key pair"
    except (PermissionError, IsADirectoryError, UnicodeDecodeError, OSError) as exc:
        return None, f"{path}: cannot be read ({exc.__class__.__name__}); fix its permissions"
    if not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text):
        return None, f"{path} is not a PEM/OpenSSH private key; point it at the private key file"
    return text, None


def _cross_checks(
    backend: Backend, network: ShareNetwork | None, shares: Sequence[ShareSpec]
) -> tuple[list[Problem], str | None, str | None, str | None]:
    problems: list[Problem] = []
    b = f"{NAMESPACE}:backend"
    public_key = private_key = proxy_key = None

    pool = ipaddress.IPv4Network(backend.service_network_cidr)
    mask = backend.service_network_division_mask
    if not pool.prefixlen <= mask <= 29:
        problems.append(
            Problem(
                f"{b}.service_network_division_mask",
                f"{mask} does not fit service_network_cidr {pool}: it must be between "
                f"{pool.prefixlen} and 29 (a service subnet needs room for the gateway, DHCP, "
                "the host port and the service instance)",
            )
        )
    if network and network.service_subnet_cidr:
        subnet = ipaddress.IPv4Network(network.service_subnet_cidr)
        if not subnet.subnet_of(pool) or subnet.prefixlen != mask:
            problems.append(
                Problem(
                    f"{NAMESPACE}:shareNetwork.service_subnet_cidr",
                    f"{subnet} is not a /{mask} inside service_network_cidr {pool}; "
                    "pick one of its /{mask} blocks or remove the key to let the program choose",
                )
            )

    if (backend.admin_network_id is None) != (backend.admin_subnet_id is None):
        missing = "admin_subnet_id" if backend.admin_subnet_id is None else "admin_network_id"
        problems.append(
            Problem(
                f"{b}.{missing}",
                "admin_network_id and admin_subnet_id go together (Manila uses the admin "
                "network only when both are set); set both or neither",
            )
        )

    if backend.interface_driver != NOOP_DRIVER and not backend.service_network_host:
        problems.append(
            Problem(
                f"{b}.service_network_host",
                "required with the OVS and Linux bridge interface drivers: the host port is "
                "bound to this Neutron agent host (Manila defaults it to its own host name; "
                "here it is explicit so every run declares the same port). Set it to the host "
                "that runs pulumi (openstack network agent list), or use NoopInterfaceDriver",
            )
        )
    ssh_address = backend.effective_ssh_address
    nic_exists = {
        "service": backend.uses_service_network,
        "admin": backend.admin_network_id is not None,
        "tenant": backend.connect_share_server_to_tenant_network,
    }
    if not nic_exists[ssh_address]:
        problems.append(
            Problem(
                f"{b}.ssh_address",
                f"the service instance has no {ssh_address} address in this network mode "
                "(service: unless direct + admin; admin: with admin_network_id; tenant: with "
                "connect_share_server_to_tenant_network); pick one it has",
            )
        )
    elif not backend.ssh_source_cidrs and not backend.ssh_proxy:
        if ssh_address == "service" and backend.interface_driver == NOOP_DRIVER:
            problems.append(
                Problem(
                    f"{b}.ssh_source_cidrs",
                    "required with NoopInterfaceDriver: there is no host port, so the program "
                    "cannot know where the share commands' SSH comes from; list the source "
                    "networks (e.g. [192.0.2.10/32]) or set ssh_proxy",
                )
            )
        if ssh_address == "tenant":
            problems.append(
                Problem(
                    f"{b}.ssh_source_cidrs",
                    "required with ssh_address: tenant: the commands then come from outside "
                    "the share server's networks; list the source networks or set ssh_proxy",
                )
            )

    if backend.path_to_public_key:
        public_key, problem = _read_public_key(backend.path_to_public_key)
        if problem:
            problems.append(Problem(f"{b}.path_to_public_key", problem))
    if backend.path_to_private_key:
        private_key, problem = _read_private_key(backend.path_to_private_key)
        if problem:
            problems.append(Problem(f"{b}.path_to_private_key", problem))
    if backend.ssh_proxy and backend.ssh_proxy.path_to_private_key:
        proxy_key, problem = _read_private_key(backend.ssh_proxy.path_to_private_key)
        if problem:
            problems.append(Problem(f"{b}.ssh_proxy.path_to_private_key", problem))
    have_key = backend.path_to_public_key and backend.path_to_private_key
    if not have_key and not backend.service_instance_password:
        problems.append(
            Problem(
                f"{b}.path_to_private_key",
                "the service instance cannot be reached: set path_to_public_key and "
                "path_to_private_key, or service_instance_password "
                "(pulumi config set --secret --path dhss:backend.service_instance_password ...)",
            )
        )

    seen: set[str] = set()
    for index, share in enumerate(shares):
        key = f"{NAMESPACE}:shares[{index}]"
        if share.name in seen:
            problems.append(
                Problem(f"{key}.name", f"{share.name!r} is used by another share; names are unique")
            )
        seen.add(share.name)
        rules_seen: set[tuple[str, int]] = set()
        for rule_index, rule in enumerate(share.access_rules):
            where = f"{key}.access_rules[{rule_index}]"
            identity = (str(rule.network.network_address), rule.network.prefixlen)
            if identity in rules_seen:
                problems.append(
                    Problem(
                        f"{where}.access_to",
                        f"{rule.access_to} is already given by another rule of this share "
                        "(Manila refuses duplicate rules); remove one",
                    )
                )
            rules_seen.add(identity)
        levels = {rule.access_level for rule in share.access_rules}
        if share.share_proto == "CIFS" and levels == {"rw", "ro"}:
            problems.append(
                Problem(
                    f"{key}.access_rules",
                    "a CIFS share cannot mix rw and ro ip rules (Samba's 'read only' is per "
                    "share); make them all rw, or all ro for a read-only share",
                )
            )
    return problems, public_key, private_key, proxy_key


def parse_stack_config(backend: Any, share_network: Any, shares: Any) -> StackSpec:
    """Validate the three config objects; raise InvalidStackConfig listing every problem."""
    problems: list[Problem] = []
    parsed_backend: Backend | None = None
    parsed_network: ShareNetwork | None = None
    parsed_shares: list[ShareSpec] = []

    sections: list[tuple[str, Any, type[_Strict]]] = [
        (f"{NAMESPACE}:backend", backend, Backend),
        (f"{NAMESPACE}:shareNetwork", share_network, ShareNetwork),
    ]
    if shares is None:
        shares = []
    if not isinstance(shares, list):
        problems.append(Problem(f"{NAMESPACE}:shares", "must be a list of shares"))
        shares = []
    for index, share in enumerate(shares):
        sections.append((f"{NAMESPACE}:shares[{index}]", share, ShareSpec))

    for section, raw, model in sections:
        if raw is None:
            problems.append(
                Problem(section, "required; set it (see the README's config reference)")
            )
            continue
        if not isinstance(raw, dict):
            problems.append(Problem(section, "must be a mapping of keys to values"))
            continue
        problems.extend(_key_problems(section, raw, model))
        if model is ShareSpec:
            for rule_index, rule in enumerate(raw.get("access_rules") or []):
                if isinstance(rule, dict):
                    problems.extend(
                        _key_problems(f"{section}.access_rules[{rule_index}]", rule, AccessRule)
                    )
        try:
            value = model.model_validate(raw)
        except ValidationError as error:
            problems.extend(_pydantic_problems(section, error))
            continue
        if isinstance(value, Backend):
            parsed_backend = value
        elif isinstance(value, ShareNetwork):
            parsed_network = value
        elif isinstance(value, ShareSpec):
            parsed_shares.append(value)

    public_key = private_key = proxy_key = None
    if parsed_backend is not None:
        more, public_key, private_key, proxy_key = _cross_checks(
            parsed_backend, parsed_network, parsed_shares
        )
        problems.extend(more)
    if problems:
        raise InvalidStackConfig(problems)
    assert parsed_backend is not None
    assert parsed_network is not None
    return StackSpec(
        backend=parsed_backend,
        share_network=parsed_network,
        shares=tuple(parsed_shares),
        public_key=public_key if parsed_backend.path_to_private_key else None,
        private_key=private_key,
        proxy_private_key=proxy_key or private_key,
    )


if __name__ == "__main__":
    # python -m dhss_components.config from-manila-conf /etc/manila/manila.conf --backend X
    from dhss_components.manila_conf import main

    raise SystemExit(main())
