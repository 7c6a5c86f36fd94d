"""The stack config contract (namespace ``dhss``), validated before any resource is declared.

Inner keys are Manila's own option and API field names, so an operator can paste the
``[generic1]`` section of ``manila.conf`` and think in Manila's terms. Defaults are Manila's.
Every problem in a config is reported at once, each naming its key and the fix.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

from .interface_drivers import INTERFACE_DRIVERS, InterfaceDriver
from .network_modes import SSH_SOURCES, NetworkMode, network_mode
from .protocols import PROTOCOLS, Protocol, ProtocolName
from .ssh_keys import host_key_problem, parse_public_key, read_private_key, read_public_key

NAMESPACE = "dhss"
GENERIC_DRIVER = "manila.share.drivers.generic.GenericShareDriver"
OVS_DRIVER = "manila.network.linux.interface.OVSInterfaceDriver"

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

SHARE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# Linux's dev_valid_name: at most IFNAMSIZ - 1 bytes, no '/', ':' or white space, not . or ..
# (OVS names its bridge's internal device after the bridge, so the same rule applies).
IFNAMSIZ = 16
INTERFACE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
# The root disk's own trees: a share mounted under one would hide what the system needs
# (a share named "lib" under /var mounts an empty filesystem over /var/lib).
SYSTEM_DIRECTORIES = frozenset(
    {
        "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "lost+found",
        "opt", "proc", "root", "run", "sbin", "snap", "sys", "tmp", "usr", "var",
    }
)  # fmt: skip
PATH_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,62}")
# Bigger than any single volume this driver should serve, small enough for every tool
# (ext3 stops at 16 TiB with 4 KiB blocks).
MAX_SHARE_GIB = {"ext4": 1024 * 1024, "ext3": 16 * 1024}
# Nova keypair names (os-keypairs): letters, digits, space, '_' and '-', up to 255.
KEYPAIR_NAME = re.compile(r"[A-Za-z0-9 _-]{1,255}")
# A POSIX login name, as useradd takes it on Manila's Ubuntu image.
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
HOST_NAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
HOST_KEY_CHOICES = ("generate", "unverified")
# SSH sources wider than this are treated as "anywhere" and need the explicit opt-in.
WIDEST_SSH_SOURCE = 8
MAX_SECONDS = 86400


LITERAL_HINTS = {
    "access_type": (
        "the generic driver grants ip rules only (Manila's NFSHelper and "
        "CIFSHelperIPAccess); use access_type: ip"
    ),
    "access_level": "use rw or ro",
    "share_volume_fstype": "Manila's generic driver supports ext4 and ext3 (resize2fs)",
}


class _Strict(BaseModel):
    # Values are taken exactly as given (a password's spaces are part of it); YAML already
    # trims what is not quoted.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _uuid(value: str | None) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[0-9A-Fa-f]{8}-?([0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}", value):
        raise ValueError(
            f"{_shown(value)} is not an OpenStack id (a UUID such as "
            "2c745913-7766-45b3-abfc-33a527e5185b); copy it from "
            "`openstack ... show -f value -c id`"
        )
    return str(uuid.UUID(value))


def _ipv4_network(value: str, example: str) -> ipaddress.IPv4Network:
    """A network in CIDR form (or one address), IPv4, without host bits."""
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            fixed = ipaddress.ip_network(value, strict=False).with_prefixlen
            message = f"{_shown(value)} has host bits set; write the network, {fixed}"
            raise ValueError(message) from None
        raise ValueError(
            f"{_shown(value)} is not an IPv4 address or network; write e.g. {example}"
        ) from None
    if network.version != 4:
        # Manila's service subnets are IPv4 (neutron_network_plugin hard-codes ip_version 4)
        # and the generic driver reports ipv6_support False: the service instance has no IPv6
        # address for such a client or source to reach.
        raise ValueError(
            f"{_shown(value)} is IPv6; the service instance has IPv4 addresses only (Manila's "
            f"generic driver does not support IPv6): write an IPv4 network, e.g. {example}"
        )
    assert isinstance(network, ipaddress.IPv4Network)
    return network


def _parse_network(value: Any, example: str) -> Any:
    """A before-validator's body: parse a string once; pass an already parsed value."""
    if isinstance(value, ipaddress.IPv4Network):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{_shown(value)} is not an IPv4 address or network; write e.g. {example}")
    return _ipv4_network(value, example)


def _parse_networks(value: Any, example: str) -> Any:
    if not isinstance(value, list | tuple):
        raise ValueError(f"must be a list of networks, e.g. [{example}]")
    if not value:
        raise ValueError(f"must list at least one network, e.g. [{example}]")
    return tuple(_parse_network(item, example) for item in value)


SshAddress = Literal["service", "admin", "tenant"]


class SshProxy(_Strict):
    """Ours: a bastion the share commands' SSH goes through (pulumi-command's proxy)."""

    host: str
    user: str
    port: StrictInt = Field(default=22, gt=0, lt=65536)
    path_to_private_key: str | None = None
    """Defaults to the backend's path_to_private_key."""
    source_cidrs: tuple[ipaddress.IPv4Network, ...]
    """Where the bastion's connections reach the service instance from (for its group)."""
    host_key: str
    """The bastion's SSH host key ("ssh-ed25519 AAAA..."), or "unverified"."""

    @field_validator("host_key")
    @classmethod
    def _host_key(cls, value: str) -> str:
        if value == "generate":
            raise ValueError(
                "the bastion is not made by this stack: give its host key (ssh-keyscan -t "
                "ed25519 BASTION, checked out of band), or unverified"
            )
        return _host_key(value, "give the bastion's host key, or unverified")

    @field_validator("source_cidrs", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        return _parse_networks(value, "192.0.2.10/32")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            if not HOST_NAME.fullmatch(value):
                raise ValueError(
                    f"{_shown(value)} is neither an IP address nor a host name; write the "
                    "bastion's address or DNS name, e.g. bastion.example.org"
                ) from None
            return value
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise ValueError(
                f"{_shown(value)} is a scoped (link-local) address, which the SSH client cannot "
                "dial by name; give the bastion's global address or DNS name"
            )
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not value or any(c.isspace() or c in "@:" for c in value):
            raise ValueError(f"{_shown(value)} is not a login name; write e.g. ubuntu")
        return value


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
    service_network_cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.254.0.0/16")
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
    max_time_to_build_instance: StrictInt = Field(default=300, gt=0, le=MAX_SECONDS)
    max_time_to_attach: StrictInt = Field(default=120, gt=0, le=MAX_SECONDS)
    backend_availability_zone: str | None = None
    storage_availability_zone: str | None = None
    # Ours, not Manila's: a destroy or a replacement never deletes a share's volume unless
    # the operator sets this to false.
    protect_volumes: StrictBool = True
    # Ours: which of the instance's addresses the share commands SSH to. Default: Manila's
    # `ip` (the service address, else the admin one).
    ssh_address: SshAddress | None = None
    # Ours: a bastion in between.
    ssh_proxy: SshProxy | None = None
    # Ours: where the share commands' SSH comes from, when the program cannot know it (the
    # Noop interface driver). Default: the host port, the admin subnet, or the bastion's.
    ssh_source_cidrs: tuple[ipaddress.IPv4Network, ...] | None = None
    # Ours: the one way to admit SSH from networks wider than /8 (0.0.0.0/0 included).
    ssh_open_to_world: StrictBool = False
    # Ours: the SSH host key the share commands expect of the service instance. "generate":
    # the stack makes one and hands it to the instance at boot (cloud-init); a public key:
    # the image's own; "unverified": no check, as Manila (paramiko's AutoAddPolicy).
    service_instance_host_key: str = "generate"

    @field_validator("service_instance_host_key")
    @classmethod
    def _instance_host_key(cls, value: str) -> str:
        return _host_key(
            value, "use generate (cloud-init images), the image's host public key, or unverified"
        )

    @field_validator("ssh_source_cidrs", mode="before")
    @classmethod
    def _ssh_sources(cls, value: Any) -> Any:
        return None if value is None else _parse_networks(value, "192.0.2.10/32")

    @property
    def network_mode(self) -> NetworkMode:
        return network_mode(
            connect_to_tenant_network=self.connect_share_server_to_tenant_network,
            admin_network=self.admin_network_id is not None,
        )

    @property
    def effective_ssh_address(self) -> SshAddress:
        return self.ssh_address or self.network_mode.manila_ip_role

    @property
    def driver(self) -> InterfaceDriver:
        return INTERFACE_DRIVERS[self.interface_driver]

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
                f"{_shown(value)} is not Manila's generic driver; this program only builds what "
                f"{GENERIC_DRIVER} builds: set it to that or remove the key"
            )
        return value

    @field_validator("service_network_id", "admin_network_id", "admin_subnet_id")
    @classmethod
    def _ids(cls, value: str | None) -> str | None:
        return _uuid(value)

    @field_validator("service_network_cidr", mode="before")
    @classmethod
    def _cidr(cls, value: Any) -> Any:
        network = _parse_network(value, "10.254.0.0/16")
        if (
            network.is_multicast
            or network.is_loopback
            or network.is_link_local
            or network.is_reserved
            or network.overlaps(ipaddress.IPv4Network("0.0.0.0/8"))
        ):
            # Neutron refuses such subnets where DHCP is on (and the service subnets have it).
            raise ValueError(
                f"{network} is not a range hosts can be given addresses from (multicast, "
                "loopback, link-local, reserved or 0.0.0.0/8); use a private range, e.g. "
                "10.254.0.0/16"
            )
        return network

    @field_validator("interface_driver")
    @classmethod
    def _interface_driver(cls, value: str) -> str:
        if value not in INTERFACE_DRIVERS:
            raise ValueError(
                f"{_shown(value)} is not one of Manila's interface drivers: use one of "
                f"{', '.join(INTERFACE_DRIVERS)}"
            )
        return value

    @field_validator("ovs_integration_bridge")
    @classmethod
    def _bridge(cls, value: str) -> str:
        if not INTERFACE_NAME.fullmatch(value) or value in (".", ".."):
            raise ValueError(
                f"{_shown(value)} is not a Linux interface name: 1-{IFNAMSIZ - 1} of letters, "
                "digits, '_', '.' and '-' (IFNAMSIZ); give the OVS integration bridge, e.g. br-int"
            )
        return value

    @field_validator("share_mount_path")
    @classmethod
    def _mount_path(cls, value: str) -> str:
        parts = value.rstrip("/").split("/")
        if not value.startswith("/") or not all(PATH_COMPONENT.fullmatch(p) for p in parts[1:]):
            raise ValueError(
                f"{_shown(value)} is not a normalised absolute path (components of letters, "
                "digits, '_', '.' and '-', no '.', '..' or '//'); use e.g. /shares"
            )
        if len(parts) < 2 or not parts[1]:
            raise ValueError(
                "/ cannot hold shares: each share's directory would be a top-level directory "
                "of the root disk; use a directory of its own, e.g. /shares (Manila's default)"
            )
        if parts[1] in SYSTEM_DIRECTORIES:
            raise ValueError(
                f"{_shown(value)} is inside /{parts[1]}, a system directory: a share named like a "
                "directory there would be mounted over it; use a directory of its own, e.g. "
                "/shares (Manila's default) or /srv/shares"
            )
        return "/".join(parts)

    @field_validator("volume_name_template", "service_instance_name_template")
    @classmethod
    def _template(cls, value: str) -> str:
        if value.count("%s") != 1 or re.search(r"%(?!s)", value):
            raise ValueError(
                f"{_shown(value)} must contain exactly one %s (like Manila's default) and no "
                "other %"
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

    @field_validator("manila_service_keypair_name")
    @classmethod
    def _keypair_name(cls, value: str) -> str:
        # The share server id (37 characters with its dash) is appended.
        if not KEYPAIR_NAME.fullmatch(value) or len(value) > 255 - 37:
            raise ValueError(
                f"{_shown(value)} is not a Nova keypair name: up to 218 letters, digits, spaces, "
                "'_' and '-'; use e.g. manila-service"
            )
        return value

    @field_validator("service_instance_user")
    @classmethod
    def _login(cls, value: str) -> str:
        if not USER_NAME.fullmatch(value):
            raise ValueError(
                f"{_shown(value)} is not a login name (1-32 of a-z 0-9 _ -, starting with a letter "
                "or _); use the image's user, e.g. manila"
            )
        return value

    @field_validator(
        "service_instance_password",
        "service_image_name",
        "service_instance_flavor_id",
        "service_network_name",
        "service_network_host",
        "share_backend_name",
        "cinder_volume_type",
        "backend_availability_zone",
        "storage_availability_zone",
        "path_to_public_key",
        "path_to_private_key",
    )
    @classmethod
    def _not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("is empty; give a value or remove the key")
        return value

    @field_validator(
        "share_backend_name",
        "service_image_name",
        "service_instance_name_template",
        "service_instance_security_group",
        "service_network_name",
        "service_network_host",
        "volume_name_template",
        "cinder_volume_type",
        "backend_availability_zone",
        "storage_availability_zone",
    )
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        # OpenStack names (Nova's schema, Neutron's NAME_FIELD_SIZE) take at most 255
        # characters and no control characters; Nova refuses leading or trailing spaces.
        if value is not None and (
            len(value) > 255
            or value != value.strip()
            or any(ord(c) < 32 or ord(c) == 127 for c in value)
        ):
            raise ValueError(
                f"{_shown(value)} is not a name OpenStack takes: at most 255 characters, no "
                "control characters, no spaces at either end"
            )
        return value

    @field_validator("service_instance_flavor_id", mode="before")
    @classmethod
    def _flavor(cls, value: Any) -> Any:
        # manila.conf and YAML both write flavor 100 unquoted: an id, whatever it looks like.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ShareNetwork(_Strict):
    """The tenant's share network (its Neutron network and subnet), as in Manila's API."""

    neutron_net_id: str
    neutron_subnet_id: str
    # Ours: a service subnet CIDR allocated elsewhere (the fleet command allocates one per
    # tenant so that parallel stacks on one service network never overlap).
    service_subnet_cidr: ipaddress.IPv4Network | None = None

    @field_validator("neutron_net_id", "neutron_subnet_id")
    @classmethod
    def _ids(cls, value: str) -> str:
        result = _uuid(value)
        assert result is not None
        return result

    @field_validator("service_subnet_cidr", mode="before")
    @classmethod
    def _cidr(cls, value: Any) -> Any:
        return None if value is None else _parse_network(value, "10.254.0.16/28")


class AccessRule(_Strict):
    """One access rule, with Manila's API field names."""

    access_type: Literal["ip"]
    access_to: ipaddress.IPv4Network
    """The client: one address (a /32) or a network; 0.0.0.0/0 is everyone."""
    access_level: Literal["rw", "ro"] = "rw"

    @field_validator("access_to", mode="before")
    @classmethod
    def _address(cls, value: Any) -> Any:
        return _parse_network(value, "10.0.0.5 or 10.0.0.0/24")


class ShareSpec(_Strict):
    """One share: name, size, protocol and access rules (Manila's API field names)."""

    name: str
    size: StrictInt
    share_proto: ProtocolName
    access_rules: tuple[AccessRule, ...] = ()
    # Manila's create-from-snapshot: the share's volume is made from a Cinder snapshot (or,
    # ours, a copy of a volume); read once, at creation.
    snapshot_id: str | None = None
    source_volume_id: str | None = None

    @field_validator("snapshot_id", "source_volume_id")
    @classmethod
    def _source_ids(cls, value: str | None) -> str | None:
        return _uuid(value)

    @property
    def protocol(self) -> Protocol:
        return PROTOCOLS[self.share_proto]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SHARE_NAME.fullmatch(value):
            raise ValueError(
                f"{_shown(value)} is not a share name: use 1-63 lowercase letters, digits, '-' or "
                "'_', starting with a letter or digit (it becomes the export path and the CIFS "
                "share name)"
            )
        return value

    @field_validator("size")
    @classmethod
    def _size(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"{_shown(value)} is not a positive number of GiB; use e.g. 10")
        return value

    @field_validator("share_proto", mode="before")
    @classmethod
    def _proto(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() in PROTOCOLS:
            return value.upper()
        raise ValueError(
            f"{_shown(value)} is not a protocol this driver serves: use {' or '.join(PROTOCOLS)}"
        )


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
    # Manila's own near-misses (e.g. service_password) share a distinctive word.
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


def _shown(value: Any) -> str:
    """A value as an error may quote it: short, whatever the operator wrote."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


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
            message = f"{_shown(item.get('input'))}: {LITERAL_HINTS.get(field_name, message)}"
        elif item["type"] in ("bool_type", "int_type"):
            message = f"{_shown(item.get('input'))}: {message}"
        problems.append(Problem(key, message))
    return problems


def _host_key(value: str, fix: str) -> str:
    if value in HOST_KEY_CHOICES:
        return value
    key, problem = parse_public_key(value)
    if key is not None:
        problem = host_key_problem(key)
    if problem:
        words = value.split()
        if len(words) >= 3 and parse_public_key(" ".join(words[1:]))[0] is not None:
            # ssh-keyscan prints "HOST TYPE BASE64": the host name is no part of the key.
            problem += (
                f" (it starts with the host name {words[0]!r}, as ssh-keyscan prints it: drop it)"
            )
        raise ValueError(f"{_shown(value[:60])} {problem}; {fix}")
    assert key is not None
    return key.line


_B = f"{NAMESPACE}:backend"


def _service_network_problems(backend: Backend, network: ShareNetwork | None) -> list[Problem]:
    problems = []
    pool = backend.service_network_cidr
    mask = backend.service_network_division_mask
    if not pool.prefixlen <= mask <= 29:
        problems.append(
            Problem(
                f"{_B}.service_network_division_mask",
                f"{mask} does not fit service_network_cidr {pool}: it must be between "
                f"{pool.prefixlen} and 29 (a service subnet needs room for the gateway, DHCP, "
                "the host port and the service instance)",
            )
        )
    subnet = network.service_subnet_cidr if network else None
    if subnet is not None and (not subnet.subnet_of(pool) or subnet.prefixlen != mask):
        problems.append(
            Problem(
                f"{NAMESPACE}:shareNetwork.service_subnet_cidr",
                f"{subnet} is not a /{mask} inside service_network_cidr {pool}; "
                f"pick one of its /{mask} blocks or remove the key to let the program choose",
            )
        )
    if subnet is not None and not backend.network_mode.service_subnet:
        problems.append(
            Problem(
                f"{NAMESPACE}:shareNetwork.service_subnet_cidr",
                f"the {backend.network_mode.name} mode has no service subnet; remove the key",
            )
        )
    return problems


def _admin_network_problems(backend: Backend) -> list[Problem]:
    if (backend.admin_network_id is None) == (backend.admin_subnet_id is None):
        return []
    missing = "admin_subnet_id" if backend.admin_subnet_id is None else "admin_network_id"
    return [
        Problem(
            f"{_B}.{missing}",
            "admin_network_id and admin_subnet_id go together (Manila uses the admin "
            "network only when both are set); set both or neither",
        )
    ]


def _host_problems(backend: Backend) -> list[Problem]:
    if not backend.driver.plugs_host_port or backend.service_network_host:
        return []
    return [
        Problem(
            f"{_B}.service_network_host",
            "required with the OVS and Linux bridge interface drivers: the host port is "
            "bound to this Neutron agent host (Manila defaults it to its own host name; "
            "here it is explicit so every run declares the same port). Set it to the host "
            "that runs pulumi (openstack network agent list), or use NoopInterfaceDriver",
        )
    ]


def _ssh_problems(backend: Backend) -> list[Problem]:
    problems = []
    mode = backend.network_mode
    ssh_address = backend.effective_ssh_address
    if ssh_address not in mode.nics:
        problems.append(
            Problem(
                f"{_B}.ssh_address",
                f"the service instance has no {ssh_address} address in the {mode.name} mode "
                f"(its NICs: {', '.join(mode.nics)}); pick one of those",
            )
        )
    elif not backend.ssh_source_cidrs and not backend.ssh_proxy:
        source = SSH_SOURCES[ssh_address]
        if source == "operator" or (source == "host port" and not backend.driver.plugs_host_port):
            why = (
                "there is no host port with NoopInterfaceDriver, so the program cannot know "
                "where the share commands' SSH comes from"
                if source == "host port"
                else f"with ssh_address: {ssh_address} the commands come from outside the "
                "share server's own networks"
            )
            problems.append(
                Problem(
                    f"{_B}.ssh_source_cidrs",
                    f"required: {why}; list the source networks (e.g. [192.0.2.10/32]) or "
                    "set ssh_proxy",
                )
            )
    for key, networks in (
        ("ssh_source_cidrs", backend.ssh_source_cidrs or ()),
        ("ssh_proxy.source_cidrs", backend.ssh_proxy.source_cidrs if backend.ssh_proxy else ()),
    ):
        wide = [n.with_prefixlen for n in networks if n.prefixlen < WIDEST_SSH_SOURCE]
        if wide and not backend.ssh_open_to_world:
            problems.append(
                Problem(
                    f"{_B}.{key}",
                    f"{', '.join(wide)} would open the service instance's SSH to a network "
                    f"wider than /{WIDEST_SSH_SOURCE} (the share commands run as root over "
                    "it); list where the commands come from, or, to accept that, set "
                    "ssh_open_to_world: true",
                )
            )
    return problems


def _name_problems(backend: Backend) -> list[Problem]:
    """Names Nova and Cinder take up to 255 characters; the server's id is part of them."""
    problems = []
    server_id = "0" * 36
    backend_name = backend.share_backend_name or "generic"
    names = {
        "service_instance_name_template": backend.service_instance_name_template
        % f"{backend_name}_{server_id}",
        "volume_name_template": backend.volume_name_template % server_id,
        "service_instance_security_group": f"{backend.service_instance_security_group}-{server_id}",
    }
    for key, name in names.items():
        if len(name) > 255:
            problems.append(
                Problem(
                    f"{_B}.{key}",
                    f"makes names of {len(name)} characters (with the 36 of an id); OpenStack "
                    "takes up to 255: shorten it",
                )
            )
    return problems


def _key_file_problems(
    backend: Backend,
) -> tuple[list[Problem], str | None, str | None, str | None]:
    problems = []
    public = None
    private_key = proxy_key = None
    if backend.path_to_public_key:
        public, problem = read_public_key(backend.path_to_public_key)
        if problem:
            problems.append(Problem(f"{_B}.path_to_public_key", problem))
    if backend.path_to_private_key:
        private_key, problem = read_private_key(backend.path_to_private_key, public)
        if problem:
            problems.append(Problem(f"{_B}.path_to_private_key", problem))
    if backend.ssh_proxy and backend.ssh_proxy.path_to_private_key:
        # The bastion has keys of its own to accept: no pairing with the keypair's.
        proxy_key, problem = read_private_key(backend.ssh_proxy.path_to_private_key, None)
        if problem:
            problems.append(Problem(f"{_B}.ssh_proxy.path_to_private_key", problem))
    if backend.ssh_proxy and not (
        backend.ssh_proxy.path_to_private_key or backend.path_to_private_key
    ):
        problems.append(
            Problem(
                f"{_B}.ssh_proxy.path_to_private_key",
                "the bastion needs a key (the share commands never send it the instance's "
                "password): set ssh_proxy.path_to_private_key, or path_to_private_key",
            )
        )
    have_key = backend.path_to_public_key and backend.path_to_private_key
    if not have_key and not backend.service_instance_password:
        problems.append(
            Problem(
                f"{_B}.path_to_private_key",
                "the service instance cannot be reached: set path_to_public_key and "
                "path_to_private_key, or service_instance_password "
                "(pulumi config set --secret --path dhss:backend.service_instance_password)",
            )
        )
    return problems, public.line if public else None, private_key, proxy_key


def _share_problems(backend: Backend, shares: Sequence[ShareSpec]) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for index, share in enumerate(shares):
        key = f"{NAMESPACE}:shares[{index}]"
        protocol = share.protocol
        if share.name in seen:
            problems.append(
                Problem(f"{key}.name", f"{share.name!r} is used by another share; names are unique")
            )
        seen.add(share.name)
        if share.name in protocol.reserved_names:
            problems.append(
                Problem(
                    f"{key}.name",
                    f"{share.name!r} cannot be a {protocol.name} share name: it is one of "
                    f"{protocol.reserved_why}; choose another name",
                )
            )
        limit = MAX_SHARE_GIB[backend.share_volume_fstype]
        if share.size > limit:
            problems.append(
                Problem(
                    f"{key}.size",
                    f"{share.size} GiB is more than a {backend.share_volume_fstype} share can "
                    f"be here ({limit} GiB); give a smaller size",
                )
            )
        networks_seen: set[ipaddress.IPv4Network] = set()
        for rule_index, rule in enumerate(share.access_rules):
            if rule.access_to in networks_seen:
                problems.append(
                    Problem(
                        f"{key}.access_rules[{rule_index}].access_to",
                        f"{rule.access_to} is already given by another rule of this share "
                        "(Manila refuses duplicate rules); remove one",
                    )
                )
            networks_seen.add(rule.access_to)
        if share.snapshot_id and share.source_volume_id:
            problems.append(
                Problem(
                    f"{key}.source_volume_id",
                    "a share's volume comes from one source: give snapshot_id or "
                    "source_volume_id, not both",
                )
            )
        levels = {rule.access_level for rule in share.access_rules}
        if protocol.one_access_level and len(levels) > 1:
            problems.append(
                Problem(
                    f"{key}.access_rules",
                    f"a {protocol.name} share cannot mix rw and ro ip rules (Samba's 'read only' "
                    "is per share); make them all rw, or all ro for a read-only share",
                )
            )
    return problems


def _cross_checks(
    backend: Backend, network: ShareNetwork | None, shares: Sequence[ShareSpec]
) -> tuple[list[Problem], str | None, str | None, str | None]:
    key_problems, public_key, private_key, proxy_key = _key_file_problems(backend)
    problems = [
        *_service_network_problems(backend, network),
        *_admin_network_problems(backend),
        *_host_problems(backend),
        *_ssh_problems(backend),
        *_name_problems(backend),
        *key_problems,
        *_share_problems(backend, shares),
    ]
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
