"""The shape of the code: one way through it, no import circles, pure logic free of Pulumi.

config → discovery → blueprint → components → program; below them the tables and pure
functions, above them the tools (offline plan, fleet, importer). A module imports only from
its own layer or the ones below; docs/architecture.md draws the same picture.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dhss_components"

LAYERS: list[set[str]] = [
    # Tables and pure functions.
    {
        "protocols", "network_modes", "interface_drivers", "naming", "service_subnet",
        "script_heredoc", "cloud_facts", "security_rules", "export_locations", "share_script",
        "host_port_script", "host_keys", "operator_files", "ssh_ready_script", "ssh_keys",
    },
    {"config"},
    {"discovery"},
    {"blueprint"},
    {"network", "connectivity", "instance", "share", "server"},
    {"program"},
    {"simulated_cloud", "manila_conf", "plan", "fleet"},
]  # fmt: skip
PURE = LAYERS[0] | {"config", "blueprint"}
"""Decided without a cloud: never import Pulumi (tested without it)."""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The package's modules that ``name`` imports (absolute names, without the package)."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    result = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("dhss_components"):
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                candidate = ".".join([*target, alias.name])
                result.add(candidate if candidate in modules() else ".".join(target))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("dhss_components."):
                    result.add(alias.name.removeprefix("dhss_components."))
    return {m for m in result if m and m != name}


def layer(name: str) -> int:
    top = name.split(".", maxsplit=1)[0]
    for index, members in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"dhss_components.{name} is in no layer: add it to LAYERS and the docs")


GRAPH = {name: imports(name, path) for name, path in modules().items()}


def test_every_module_has_a_layer() -> None:
    for name in GRAPH:
        layer(name)


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_module_imports_upward(name: str) -> None:
    for target in GRAPH[name]:
        assert layer(target) <= layer(name), f"{name} (layer {layer(name)}) imports {target}"


def test_there_is_no_import_circle() -> None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError(" -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        for target in GRAPH.get(node, ()):
            visit(target, [*path, node])
        done.add(node)

    for name in GRAPH:
        visit(name, [])


@pytest.mark.parametrize("name", sorted(PURE))
def test_pure_logic_never_imports_pulumi(name: str) -> None:
    seen: set[str] = set()
    stack = [name]
    while stack:
        module = stack.pop()
        if module in seen:
            continue
        seen.add(module)
        tree = ast.parse(modules()[module].read_text())
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            assert not any(n.split(".")[0].startswith("pulumi") for n in names), module
        stack.extend(GRAPH[module])


def test_the_repository_stands_alone() -> None:
    # A user who clones the project has only the project: no path may lead outside it.
    root = PACKAGE.parent
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
    ).stdout.split(b"\0")
    outside = re.compile(rb"\.\./shared|/work/")
    found = []
    for name in filter(None, listed):
        path = root / name.decode()
        if path.is_file() and path != Path(__file__):
            for number, line in enumerate(path.read_bytes().splitlines(), 1):
                if outside.search(line):
                    found.append(f"{name.decode()}:{number}")
    assert found == []
