"""The offline plan as Markdown (for a pull-request comment) and as JSON (for scripts).

Pure: a ``Plan`` in, text out. The Markdown puts first what the plan assumed, then what a
reviewer checks (export locations, security rules, resources, the graph) and last, folded,
the scripts the shares run. The JSON has the same content under stable keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from .model import Plan, PlannedResource, ShareCommands

JSON_FORMAT_VERSION = 1
_HEREDOC = re.compile(r"<<-?'?(?P<delimiter>[A-Za-z_][A-Za-z0-9_]*)'?\s*$")


# -- JSON ------------------------------------------------------------------------------------


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as plain data; these keys are a contract for scripts."""

    def commands(items: Iterable[ShareCommands], key: str) -> dict[str, Any]:
        return {
            getattr(c, key): {
                "resource": c.resource,
                "create": c.create,
                "update": c.update,
                "delete": c.delete,
            }
            for c in items
        }

    return {
        "format_version": JSON_FORMAT_VERSION,
        "project": plan.project,
        "stack": plan.stack,
        "simulated": True,
        "notices": list(plan.notices),
        "share_server": plan.share_server,
        "shares": plan.shares,
        "security_rules": [dict(rule) for rule in plan.security_rules],
        "resources": [asdict(resource) for resource in plan.resources],
        "dependency_edges": [{"from": a, "to": b} for a, b in plan.edges],
        "share_commands": commands(plan.share_commands, "share"),
        "host_commands": commands(plan.host_commands, "resource"),
    }


def render_json(plan: Plan) -> str:
    return json.dumps(plan_document(plan), indent=2) + "\n"


# -- Markdown ----------------------------------------------------------------------------------


def short_type(typ: str) -> str:
    """``openstack:networking/subnet:Subnet`` → ``networking/Subnet``; ``command:remote:Command``
    → ``remote/Command``."""
    package_module, _, kind = typ.rpartition(":")
    module = package_module.split(":", 1)[-1].split("/")[0]
    return f"{module}/{kind}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    return f"`{_cell(text)}`"


def split_heredoc(command: str) -> tuple[str, str | None, str | None]:
    """(first line, here-document body, delimiter) of a rendered command; body None if none."""
    head, _, rest = command.partition("\n")
    match = _HEREDOC.search(head)
    if not match:
        return command, None, None
    delimiter = match.group("delimiter")
    body = rest.removesuffix("\n").removesuffix(delimiter)
    return head, body, delimiter


def _command_summary(command: str) -> str:
    head, body, _ = split_heredoc(command)
    if body is None:
        return head if len(head) <= 160 else head[:157] + "..."
    return f"{head} (+ {body.count(chr(10))}-line script)"


def _inputs_cell(resource: PlannedResource) -> str:
    parts = []
    for key, value in resource.inputs.items():
        if key in ("create", "update", "delete") and isinstance(value, str):
            parts.append(f"{key}: {_code(_command_summary(value))}")
        else:
            parts.append(f"{key}: {_code(value)}")
    return "<br>".join(parts)


def _options_cell(resource: PlannedResource) -> str:
    options = []
    if resource.protect:
        options.append("**protect**")
    if resource.delete_before_replace:
        options.append("delete before replace")
    if resource.ignore_changes:
        options.append("ignore changes: " + ", ".join(resource.ignore_changes))
    return "; ".join(options)


def _node_id(name: str) -> str:
    return "r_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def mermaid(plan: Plan) -> str:
    """``graph TD``: one subgraph per component, an arrow from each resource to those that wait
    for it (edges implied by longer paths left out)."""
    by_name = {r.name: r for r in plan.resources}
    lines = ["graph TD"]
    groups: dict[str | None, list[PlannedResource]] = {}
    for resource in plan.resources:
        if resource.custom:
            groups.setdefault(resource.parent, []).append(resource)
    for parent, members in groups.items():
        indent = "  "
        if parent is not None:
            component = by_name.get(parent)
            kind = component.type.rpartition(":")[2] if component else "component"
            lines.append(f'  subgraph {_node_id(parent)}["{parent} ({kind})"]')
            indent = "    "
        for member in members:
            label = member.name
            if parent and label.startswith(parent + "-"):
                label = label[len(parent) + 1 :]
            lines.append(
                f'{indent}{_node_id(member.name)}["{label}<br/><i>{short_type(member.type)}</i>"]'
            )
        if parent is not None:
            lines.append("  end")
    for dependency, dependent in plan.edges:
        lines.append(f"  {_node_id(dependency)} --> {_node_id(dependent)}")
    return "\n".join(lines)


def _rule_ports(rule: dict[str, Any]) -> str:
    low, high = rule.get("portRangeMin"), rule.get("portRangeMax")
    if low is None:
        return "all"
    return str(low) if low == high else f"{low}-{high}"


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def _scripts_section(title: str, where: str, commands: tuple[ShareCommands, ...]) -> list[str]:
    if not commands:
        return []
    out = [f"#### {title}", "", where, ""]
    bodies: dict[str, tuple[str, str]] = {}
    for item in commands:
        out.append(f"**{item.share}** (`{item.resource}`):")
        out.append("")
        out.append("```bash")
        steps = [("create", item.create)]
        if item.update is not None and item.update != item.create:
            steps.append(("update", item.update))
        if item.delete is not None:
            steps.append(("delete", item.delete))
        for step, command in steps:
            head, body, delimiter = split_heredoc(command)
            same = " (update runs the same command)" if step == "create" and item.update else ""
            out.append(f"# {step}{same}")
            out.append(head)
            if body is not None and delimiter is not None:
                bodies.setdefault(body, (delimiter, item.share))
        out.append("```")
        out.append("")
    for body, (delimiter, first_user) in bodies.items():
        digest = hashlib.sha256(body.encode()).hexdigest()[:12]
        lines = body.count("\n")
        out += [
            "<details>",
            f"<summary>The script these commands carry as the here-document <code>{delimiter}"
            f"</code> ({lines} lines, sha256 {digest}…), first used by {first_user}</summary>",
            "",
            "```bash",
            body.rstrip("\n"),
            "```",
            "",
            "</details>",
            "",
        ]
    return out


def render_markdown(plan: Plan) -> str:
    server = plan.share_server
    custom = [r for r in plan.resources if r.custom]
    components = [r for r in plan.resources if not r.custom]
    out = [
        f"### Offline plan: `{plan.project}` / `{plan.stack}`",
        "",
        "> [!IMPORTANT]",
        f"> **Simulated.** The real program ran against a simulated cloud built from "
        f"`Pulumi.{plan.stack}.yaml` alone: no cloud was contacted and nothing was created. "
        "Read what it substituted and assumed:",
    ]
    out += [f"> - {notice}" for notice in plan.notices]
    out.append("")
    summary = [f"Network mode **{server.get('network_mode')}**"]
    if server.get("service_subnet_cidr"):
        summary.append(f"service subnet **{server['service_subnet_cidr']}**")
    if server.get("router_id"):
        summary.append(f"joined to router `{server['router_id']}`")
    summary.append(f"{len(custom)} cloud resources in {len(components)} components")
    out += [" · ".join(summary) + ".", ""]

    out += [
        "#### Export locations",
        "",
        "| share | protocol | size | path | admin only | preferred |",
        "|---|---|---|---|---|---|",
    ]
    for name, share in plan.shares.items():
        for location in share.get("export_locations", []):
            out.append(
                f"| {name} | {share.get('share_proto')} | {share.get('size')} GiB "
                f"| {_code(location['path'])} | {_yes(location.get('is_admin_only'))} "
                f"| {_yes(location.get('preferred'))} |"
            )
    out.append("")

    out += [
        "#### Security rules (the service instance's ports, ingress)",
        "",
        "| protocol | ports | from | why |",
        "|---|---|---|---|",
    ]
    for rule in plan.security_rules:
        out.append(
            f"| {rule.get('protocol')} | {_rule_ports(rule)} | {_code(rule.get('remoteIpPrefix'))}"
            f" | {_cell(str(rule.get('description') or ''))} |"
        )
    out.append("")

    out += [
        "#### Resources",
        "",
        "| resource | type | inputs that matter | options |",
        "|---|---|---|---|",
    ]
    for resource in custom:
        out.append(
            f"| `{resource.name}` | {short_type(resource.type)} | {_inputs_cell(resource)} "
            f"| {_options_cell(resource)} |"
        )
    out.append("")

    out += [
        "#### Dependency graph",
        "",
        "An arrow points from a resource to one that waits for it: `pulumi up` creates along the "
        "arrows, `pulumi destroy` deletes against them.",
        "",
        "```mermaid",
        mermaid(plan),
        "```",
        "",
    ]
    out += _scripts_section(
        "What each share runs",
        "Over SSH on the service instance"
        + (f" ({server['ssh_address']})" if server.get("ssh_address") else "")
        + ". Each command is the line shown, followed by the script below as a here-document.",
        plan.share_commands,
    )
    out += _scripts_section(
        "What runs on the host",
        "On the machine that runs `pulumi` (the host port's plug and unplug).",
        plan.host_commands,
    )
    return "\n".join(out).rstrip("\n") + "\n"
