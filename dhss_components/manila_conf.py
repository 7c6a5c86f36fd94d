"""Import a backend section of manila.conf as the stack's ``dhss:backend`` config.

``python -m dhss_components.manila_conf /etc/manila/manila.conf --backend generic1`` prints, on
stdout, YAML for ``Pulumi.<stack>.yaml`` holding the options of Manila's generic driver that
the section sets, with oslo.config's types (``True`` → true, ``28`` → 28). On stderr it says
what it left out and why: options this program does not implement yet (unsupported), options
that are not the generic driver's (ignored, with the nearest real name for a near-miss such
as ``service_password``), and, for passwords, the ``pulumi config set --secret`` command to
run. A password never goes into the YAML and is never printed: the command has no value, so
the Pulumi CLI prompts for it.

manila.conf is oslo.config INI. Like oslo.config, a backend section does *not* inherit from
``[DEFAULT]`` (configparser would): Manila reads the generic driver's options from the
backend section only. Three ``[DEFAULT]`` options still matter, because Manila reads them
from there: ``ovs_integration_bridge`` (the interface driver's bridge),
``storage_availability_zone`` (the share server's zone when the backend sets none) and
``host`` (the host port's binding when ``service_network_host`` is unset; its own default
is the machine's host name). oslo.config merges two sections of one name silently (the
later values win); for the sections imported here that is an error naming both lines.
"""

from __future__ import annotations

import argparse
import configparser
import shlex
import socket
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import (
    ALWAYS_ON_MANILA_OPTIONS,
    GENERIC_DRIVER,
    NAMESPACE,
    UNSUPPORTED_MANILA_OPTIONS,
    Backend,
    _nearest,
)
from .operator_files import OperatorFileError, excerpt, read_text

SECRET_OPTIONS = frozenset({"service_instance_password"})
"""Options whose values go to `pulumi config set --secret`, never to the YAML."""
NOT_MANILA_OPTIONS = frozenset(
    {"service_network_id", "protect_volumes", "ssh_address", "ssh_proxy", "ssh_source_cidrs"}
)
"""Keys of dhss:backend that are this program's own: a manila.conf never means them."""
FROM_DEFAULT_SECTION = ("ovs_integration_bridge", "storage_availability_zone")
"""Options Manila reads from [DEFAULT], not from the backend section."""
# oslo.config's Boolean type (oslo_config/types.py), case-insensitive.
TRUE_VALUES = frozenset({"true", "1", "on", "yes"})
FALSE_VALUES = frozenset({"false", "0", "off", "no"})


class ManilaConfError(Exception):
    """The file cannot be imported; the message says why and what to do. Exit code 2."""


@dataclass
class Imported:
    """One backend section, sorted into what goes where."""

    section: str
    backend: dict[str, Any] = field(default_factory=dict)
    """dhss:backend, in the file's order."""
    comments: dict[str, str] = field(default_factory=dict)
    """Where a value came from, when not simply from the section."""
    secrets: dict[str, str] = field(default_factory=dict)
    """dhss:backend key -> where its value is in manila.conf, for `pulumi config set --secret`
    (the value itself is never kept: the Pulumi CLI prompts for it)."""
    unsupported: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _importable() -> dict[str, str]:
    """Option name → kind (bool, int, str) for the generic driver's options in Backend."""
    kinds = {}
    for name, info in Backend.model_fields.items():
        if name in NOT_MANILA_OPTIONS:
            continue
        annotation: Any = info.annotation
        members: tuple[Any, ...] = (
            typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
        )
        candidates = [a for a in members if a is not type(None)] or [annotation]
        kind = "str"
        if bool in candidates:
            kind = "bool"
        elif int in candidates:
            kind = "int"
        kinds[name] = kind
    return kinds


def _unquote(value: str) -> str:
    """oslo.config's parser drops one pair of matching quotes around a value."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def convert(option: str, raw: str, kind: str) -> Any:
    """A manila.conf value in oslo.config's type; ValueError naming the option otherwise."""
    value = _unquote(raw)
    if kind == "bool":
        if value.lower() in TRUE_VALUES:
            return True
        if value.lower() in FALSE_VALUES:
            return False
        raise ValueError(
            f"{option} = {excerpt(value)}: not a boolean (oslo.config takes True or False)"
        )
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{option} = {excerpt(value)}: not an integer") from None
    return value


class ManilaConf(configparser.ConfigParser):
    """manila.conf as oslo.config reads it, and where each section header is."""

    def __init__(self) -> None:
        super().__init__(
            interpolation=None,  # oslo.config does no %-interpolation
            strict=False,  # a repeated option: the last one wins, as in oslo.config
            default_section="\x00none",  # [DEFAULT] is a section like the others
        )
        self.optionxform = str  # type: ignore[assignment,method-assign]  # names as written
        self.header_lines: dict[str, list[int]] = {}
        """Section name -> the line numbers of its headers (two for a repeated section)."""

    def parse(self, text: str, source: str) -> None:
        self.read_string(text, source=source)
        for number, line in enumerate(text.splitlines(), start=1):
            if line[:1].isspace():
                continue  # a continuation of a value, not a header
            header = self.SECTCRE.match(line.strip())
            if header:
                self.header_lines.setdefault(header.group("header"), []).append(number)

    def duplicates(self, sections: Sequence[str]) -> list[str]:
        return [
            f"[{section}] appears {len(lines)} times (lines {', '.join(map(str, lines))}); "
            "oslo.config merges them, the later values winning: keep one"
            for section in sections
            if len(lines := self.header_lines.get(section, [])) > 1
        ]


def read_manila_conf(path: Path) -> ManilaConf:
    parser = ManilaConf()
    try:
        text = read_text(path)
    except OperatorFileError as exc:
        raise ManilaConfError(str(exc)) from None
    try:
        parser.parse(text, str(path))
    except configparser.MissingSectionHeaderError as exc:
        raise ManilaConfError(
            f"{path}: not an INI file like manila.conf (line {exc.lineno} comes before any "
            "[section] header)"
        ) from None
    except configparser.ParsingError as exc:
        # Its message quotes the lines, which may hold a password: only their numbers here.
        numbers = ", ".join(str(number) for number, _ in exc.errors)
        raise ManilaConfError(
            f"{path}: not an INI file like manila.conf (line {numbers}: neither a [section], "
            "an option = value nor a comment)"
        ) from None
    except configparser.Error as exc:
        raise ManilaConfError(
            f"{path}: not an INI file like manila.conf ({exc.__class__.__name__})"
        ) from None
    return parser


def import_backend(parser: ManilaConf, section: str, *, hostname: str) -> Imported:
    """Sort the section's options; raise ManilaConfError if it is no generic DHSS=True backend."""
    if not parser.has_section(section):
        found = [s for s in parser.sections() if s != "DEFAULT"]
        listed = ", ".join(f"[{s}]" for s in found) if found else "none"
        raise ManilaConfError(
            f"no section [{section}] (backend sections here: {listed}); pass --backend with "
            "the name listed in enabled_share_backends"
        )
    duplicates = parser.duplicates(["DEFAULT", section])
    if duplicates:
        raise ManilaConfError("; ".join(duplicates))
    options = dict(parser.items(section))
    default = dict(parser.items("DEFAULT")) if parser.has_section("DEFAULT") else {}
    result = Imported(section)
    kinds = _importable()

    driver = _unquote(options.get("share_driver", GENERIC_DRIVER))
    if driver != GENERIC_DRIVER:
        raise ManilaConfError(
            f"[{section}] share_driver = {excerpt(driver)}: not Manila's generic driver; this "
            f"program builds only what {GENERIC_DRIVER} builds"
        )
    if "driver_handles_share_servers" not in options:
        raise ManilaConfError(
            f"[{section}] does not set driver_handles_share_servers (Manila requires it); the "
            "generic driver's share servers need driver_handles_share_servers = True"
        )
    try:
        dhss = convert(
            "driver_handles_share_servers", options["driver_handles_share_servers"], "bool"
        )
    except ValueError as exc:
        raise ManilaConfError(f"[{section}] {exc}") from None
    if dhss is not True:
        raise ManilaConfError(
            f"[{section}] driver_handles_share_servers = False: this program builds the share "
            "server that the generic driver builds with driver_handles_share_servers = True; "
            "with False, Manila uses a server you manage and there is nothing to declare"
        )

    enabled = default.get("enabled_share_backends")
    if enabled is not None and section not in [b.strip() for b in enabled.split(",")]:
        result.notes.append(
            f"[{section}] is not in [DEFAULT] enabled_share_backends "
            f"({excerpt(enabled.strip())}): Manila does not use it"
        )

    problems = []
    look_alikes: list[tuple[str, str]] = []
    for option, raw in options.items():
        if option in SECRET_OPTIONS:
            result.secrets[option] = f"{option} in [{section}]"
        elif option in kinds:
            if option in FROM_DEFAULT_SECTION:
                result.ignored.append(
                    f"{option}: Manila reads it from [DEFAULT] only, so it ignores this one"
                )
                continue
            if not _unquote(raw):
                result.notes.append(f"{option} is empty: left at Manila's default")
                continue
            try:
                result.backend[option] = convert(option, raw, kinds[option])
            except ValueError as exc:
                problems.append(str(exc))
        elif option in UNSUPPORTED_MANILA_OPTIONS:
            result.unsupported.append(f"{option} ({UNSUPPORTED_MANILA_OPTIONS[option]})")
        elif option in ALWAYS_ON_MANILA_OPTIONS:
            result.ignored.append(f"{option}: {ALWAYS_ON_MANILA_OPTIONS[option]}")
        else:
            nearest = _nearest(option, list(kinds))
            if nearest in SECRET_OPTIONS:
                look_alikes.append((option, nearest))
            elif nearest:
                result.ignored.append(
                    f"{option}: not an option of Manila's generic driver; did you mean {nearest}?"
                )
            else:
                result.ignored.append(f"{option}: not an option of Manila's generic driver")
    if problems:
        raise ManilaConfError(f"[{section}] " + "; ".join(problems))
    for option, meant in look_alikes:
        # Manila reads only the real option; a look-alike's value goes nowhere.
        not_read = f"{option}: not an option of Manila's generic driver (Manila ignores it)"
        if meant in result.secrets:
            result.ignored.append(
                f"{not_read}; it looks like {meant}, which [{section}] sets too, and that is "
                "the one Manila uses"
            )
        else:
            result.ignored.append(
                f"{not_read}; did you mean {meant}? If so, store its value as {meant} (the "
                "secret command below)"
            )
            result.secrets[meant] = f"{option} in [{section}], if it meant {meant}"

    for option in FROM_DEFAULT_SECTION:
        if default.get(option):
            result.backend[option] = convert(option, default[option], kinds[option])
            result.comments[option] = "from [DEFAULT], where Manila reads it"
    interface_driver = result.backend.get("interface_driver", "")
    if "service_network_host" not in result.backend and not interface_driver.endswith(
        "NoopInterfaceDriver"
    ):
        if default.get("host"):
            result.backend["service_network_host"] = _unquote(default["host"])
            result.comments["service_network_host"] = "[DEFAULT] host, Manila's fallback"
        else:
            result.backend["service_network_host"] = hostname
            result.comments["service_network_host"] = (
                "Manila's default, this machine's host name: check it is the manila-share "
                "host (openstack network agent list)"
            )
    if result.secrets and result.backend.get("path_to_private_key"):
        result.notes.append(
            "a password is not needed while path_to_public_key and path_to_private_key are set"
        )
    return result


def render_yaml(imported: Imported, source: Path) -> str:
    lines = [
        f"# dhss:backend from [{imported.section}] of {source}",
        "# (python -m dhss_components.manila_conf). Add dhss:shareNetwork and dhss:shares;",
        "# secrets are not in this file (see the pulumi config set commands).",
        "config:",
        f"  {NAMESPACE}:backend:",
    ]
    for option, value in imported.backend.items():
        line = yaml.safe_dump({option: value}, default_flow_style=False, width=1000).strip()
        comment = imported.comments.get(option)
        lines.append(f"    {line}" + (f"  # {comment}" if comment else ""))
    return "\n".join(lines) + "\n"


def secret_commands(imported: Imported, stack: str | None) -> list[str]:
    """One command per secret key, without the value: the Pulumi CLI prompts for it."""
    lines = []
    for key, source in imported.secrets.items():
        words = ["pulumi", "config", "set", "--secret", "--path"]
        if stack:
            words += ["--stack", stack]
        words.append(f"{NAMESPACE}:backend.{key}")
        lines += [f"  # the value of {source}:", f"  {shlex.join(words)}"]
    return lines


def report(imported: Imported, stack: str | None) -> str:
    out = []
    for title, items in (
        ("unsupported (not implemented yet; left out)", imported.unsupported),
        ("ignored", imported.ignored),
        ("note", imported.notes),
    ):
        out += [f"{title}: {item}" for item in items]
    if imported.secrets:
        out.append(
            "secrets are not in the YAML; to store them in the stack (encrypted), run each "
            "command below and type the value when the Pulumi CLI asks for it:"
        )
        out += secret_commands(imported, stack)
    return "\n".join(out) + ("\n" if out else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dhss_components.manila_conf",
        description="Print the dhss:backend stack config for one backend section of "
        "manila.conf; what is left out, and the commands that store its secrets, go to stderr.",
    )
    parser.add_argument("path", type=Path, help="manila.conf, e.g. /etc/manila/manila.conf")
    parser.add_argument("--backend", required=True, help="the section, e.g. generic1")
    parser.add_argument("--stack", help="add --stack STACK to the pulumi config set commands")
    args = parser.parse_args(argv)
    try:
        imported = import_backend(
            read_manila_conf(args.path), args.backend, hostname=socket.gethostname()
        )
    except ManilaConfError as exc:
        print(f"manila_conf: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render_yaml(imported, args.path))
    sys.stderr.write(report(imported, args.stack))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
