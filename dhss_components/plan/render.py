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
_DELIMITER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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


# -- values from the stack file, made inert ------------------------------------------------------
#
# The Markdown is posted as a pull-request comment, and the pull request writes the stack file:
# a share name, a description, a client, any string may hold Markdown or HTML. Every value is
# shown through one of these, so that it reads as exactly the text it is and changes nothing
# around it (see docs/plan-and-previews.md, "Who can run what").

_INVISIBLE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BACKTICKS = re.compile(r"`+")


def visible(text: str) -> str:
    """``text`` on one line with nothing hidden: a backslash doubled, a control character
    (a newline, a carriage return...) written as ``\\xNN`` or ``\\uNNNN``."""

    def escape(match: re.Match[str]) -> str:
        character = match.group(0)
        if character == "\\":
            return "\\\\"
        code = ord(character)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _INVISIBLE.sub(escape, text)


def code(value: Any) -> str:
    """Any value as a Markdown code span, safe in a table cell, a heading or a list: a code
    span shows its text literally (no HTML, no links, images, mentions or emphasis), its
    fence is longer than any run of backticks inside, ``|`` is escaped for the table, and the
    text is on one line (``visible``). A non-string is shown as JSON."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    text = visible(text).replace("|", "\\|")
    if not text:
        return "(empty)"  # plain text: a value "(empty)" is a code span
    fence = "`" * (max(map(len, _BACKTICKS.findall(text)), default=0) + 1)
    # A span loses one space at each end when it has both, and must not start or end with a
    # backtick next to its fence: pad it then.
    padded = text.strip(" ") and (text[0] in "` " or text[-1] in "` ")
    pad = " " if padded else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_PROSE_SPECIAL = re.compile(r"[\\`*_\[\]<>&|~!#@]")


def prose(text: str) -> str:
    """A sentence that embeds values (the plan's notices) as Markdown text: every character
    Markdown or HTML could act on is backslash-escaped, and ``@`` goes in a code span so no
    one is mentioned."""
    return _PROSE_SPECIAL.sub(
        lambda m: "`@`" if m.group(0) == "@" else "\\" + m.group(0), visible(text)
    )


def fenced(body: str, info: str) -> list[str]:
    """A fenced code block around ``body`` whose fence no line of ``body`` can close."""
    longest = max(map(len, re.findall(r"^[ \t]*(`{3,}|~{3,})", body, re.MULTILINE)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, body, fence]


def mermaid_text(text: str) -> str:
    """A label inside a Mermaid ``["..."]``: every character but letters, digits and
    ``-_./:`` and space as Mermaid's ``#NN;`` entity code."""
    return re.sub(r"[^A-Za-z0-9 _./:-]", lambda m: f"#{ord(m.group(0))};", text)


def split_heredoc(command: str) -> tuple[str, str | None, str | None]:
    """(what comes before the here-document's body, the body, its delimiter) of a rendered
    command; body None if it has none. The delimiter is the command's last line, so a value
    with a newline in the arguments does not hide the here-document."""
    rest, _, last = command.removesuffix("\n").rpartition("\n")
    if rest and _DELIMITER.fullmatch(last):
        for marker in (f"<<'{last}'\n", f"<<-'{last}'\n", f"<<{last}\n", f"<<-{last}\n"):
            index = command.find(marker)
            if index != -1:
                body = command[index + len(marker) :].removesuffix("\n").removesuffix(last)
                return command[: index + len(marker) - 1], body, last
    return command, None, None


def _command_summary(command: str) -> str:
    head, body, _ = split_heredoc(command)
    if body is None:
        return head if len(head) <= 160 else head[:157] + "..."
    return f"{head} (+ {body.count(chr(10))}-line script)"


def _inputs_cell(resource: PlannedResource) -> str:
    parts = []
    for key, value in resource.inputs.items():
        if key in ("create", "update", "delete") and isinstance(value, str):
            parts.append(f"{code(key)}: {code(_command_summary(value))}")
        else:
            parts.append(f"{code(key)}: {code(value)}")
    return "<br>".join(parts)


def _options_cell(resource: PlannedResource) -> str:
    options = []
    if resource.protect:
        options.append("**protect**")
    if resource.delete_before_replace:
        options.append("delete before replace")
    if resource.ignore_changes:
        options.append("ignore changes: " + ", ".join(map(code, resource.ignore_changes)))
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
            lines.append(
                f'  subgraph {_node_id(parent)}["{mermaid_text(parent)} ({mermaid_text(kind)})"]'
            )
            indent = "    "
        for member in members:
            label = member.name
            if parent and label.startswith(parent + "-"):
                label = label[len(parent) + 1 :]
            lines.append(
                f'{indent}{_node_id(member.name)}["{mermaid_text(label)}<br/>'
                f'<i>{mermaid_text(short_type(member.type))}</i>"]'
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
        out.append(f"**{code(item.share)}** ({code(item.resource)}):")
        out.append("")
        lines: list[str] = []
        steps = [("create", item.create)]
        if item.update is not None and item.update != item.create:
            steps.append(("update", item.update))
        if item.delete is not None:
            steps.append(("delete", item.delete))
        for step, command in steps:
            head, body, delimiter = split_heredoc(command)
            same = " (update runs the same command)" if step == "create" and item.update else ""
            lines.append(f"# {step}{same}")
            lines.append(head)
            if body is not None and delimiter is not None:
                bodies.setdefault(body, (delimiter, item.share))
        out += fenced("\n".join(lines), "bash")
        out.append("")
    for body, (delimiter, first_user) in bodies.items():
        digest = hashlib.sha256(body.encode()).hexdigest()[:12]
        count = body.count("\n")
        # The summary is raw HTML: it holds only what the plan itself makes (the delimiter is
        # a shell word, _DELIMITER); the share's name goes below it, as Markdown.
        out += [
            "<details>",
            f"<summary>The script these commands carry as the here-document <code>{delimiter}"
            f"</code> ({count} lines, sha256 {digest}…)</summary>",
            "",
            f"First used by {code(first_user)}.",
            "",
            *fenced(body.rstrip("\n"), "bash"),
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
        f"### Offline plan: {code(plan.project)} / {code(plan.stack)}",
        "",
        "> [!IMPORTANT]",
        f"> **Simulated.** The real program ran against a simulated cloud built from "
        f"{code(f'Pulumi.{plan.stack}.yaml')} alone: no cloud was contacted and nothing was "
        "created. "
        "Read what it substituted and assumed:",
    ]
    out += [f"> - {prose(notice)}" for notice in plan.notices]
    out.append("")
    summary = [f"Network mode {code(server.get('network_mode'))}"]
    if server.get("service_subnet_cidr"):
        summary.append(f"service subnet {code(server['service_subnet_cidr'])}")
    if server.get("router_id"):
        summary.append(f"joined to router {code(server['router_id'])}")
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
                f"| {code(name)} | {code(share.get('share_proto'))} "
                f"| {code(share.get('size'))} GiB "
                f"| {code(location['path'])} | {_yes(location.get('is_admin_only'))} "
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
            f"| {code(rule.get('protocol'))} | {code(_rule_ports(rule))} "
            f"| {code(rule.get('remoteIpPrefix'))} | {code(rule.get('description') or '')} |"
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
            f"| {code(resource.name)} | {code(short_type(resource.type))} "
            f"| {_inputs_cell(resource)} "
            f"| {_options_cell(resource)} |"
        )
    out.append("")

    out += [
        "#### Dependency graph",
        "",
        "An arrow points from a resource to one that waits for it: `pulumi up` creates along the "
        "arrows, `pulumi destroy` deletes against them.",
        "",
        *fenced(mermaid(plan), "mermaid"),
        "",
    ]
    out += _scripts_section(
        "What each share runs",
        "Over SSH on the service instance"
        + (f" ({code(server['ssh_address'])})" if server.get("ssh_address") else "")
        + ". Each command is the line shown, followed by the script below as a here-document.",
        plan.share_commands,
    )
    out += _scripts_section(
        "What runs on the host",
        "On the machine that runs `pulumi` (the host port's plug and unplug).",
        plan.host_commands,
    )
    return "\n".join(out).rstrip("\n") + "\n"
