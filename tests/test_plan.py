"""The offline plan: what a reviewer reads in a pull request, made from a stack file alone."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dhss_components.plan.__main__ import main
from dhss_components.plan.build import reduced_edges
from dhss_components.share_script import share_script
from tests.stack_run import write_key_pair

ROOT = Path(__file__).resolve().parent.parent
ATTACHMENT = "share-server-share-projects-attachment"
EXPORT = "share-server-share-projects-export"


def plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def dev_markdown() -> str:
    # The command a reviewer (or the preview workflow) runs, in its own process.
    result = subprocess.run(
        [sys.executable, "-m", "dhss_components.plan", "--stack", "dev"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.fixture
def dev_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, _ = plan(capsys, "--stack", "dev", "--cwd", str(ROOT), "--format", "json")
    assert code == 0
    document: dict[str, Any] = json.loads(out)
    return document


def write_stack(directory: Path, config: dict[str, Any], stack: str = "t1") -> None:
    (directory / "Pulumi.yaml").write_text("name: manila-dhss\nruntime: python\n")
    (directory / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))


def dev_config() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    config: dict[str, Any] = document["config"]
    return config


def test_markdown_says_first_that_it_is_simulated_and_what_it_substituted(
    dev_markdown: str,
) -> None:
    head = dev_markdown.split("####", 1)[0]
    assert "Simulated" in head
    assert "nothing was created" in head
    # Pulumi.dev.yaml names DevStack's key files, which this machine does not have.
    # (Markdown-escaped: the notices embed values from the stack file.)
    assert "/opt/stack/.ssh/id\\_rsa, which does not exist on this machine" in head
    assert "/opt/stack/.ssh/id\\_rsa.pub, which does not exist on this machine" in head
    assert "placeholder key" in head
    assert "tenant subnet 5f0c7e2a-8d3b-4b6e-a1f4-3c9d2e7b8a21 is 10.0.0.0/26" in head
    assert "PRIVATE KEY" not in dev_markdown


def _row(markdown: str, resource: str) -> str:
    rows = [line for line in markdown.splitlines() if line.startswith(f"| `{resource}` |")]
    assert len(rows) == 1, f"no single row for {resource}"
    return rows[0]


def test_markdown_shows_the_service_subnet_and_its_router_interface(dev_markdown: str) -> None:
    subnet = _row(dev_markdown, "share-server-network-subnet")
    assert "`cidr`: `10.254.0.0/28`" in subnet  # Manila's first /28 of 10.254.0.0/16
    assert (
        "`name`: `service_subnet_for_handling_of_share_server_for_tenant_subnet_"
        "5f0c7e2a-8d3b-4b6e-a1f4-3c9d2e7b8a21`" in subnet
    )
    interface = _row(dev_markdown, "share-server-network-router-interface")
    assert "`routerId`: `<id of the tenant subnet's router>`" in interface
    assert "`subnetId`: `<id of share-server-network-subnet>`" in interface
    volume = _row(dev_markdown, "share-server-share-projects-volume")
    assert "`size`: `10`" in volume
    assert "**protect**" in volume


def test_markdown_lists_the_export_locations(dev_markdown: str) -> None:
    rows = re.findall(
        r"^\| `projects` \| `NFS` \| `10` GiB \| `([0-9.]+):/shares/projects` "
        r"\| (yes|no) \| (yes|no) \|$",
        dev_markdown,
        re.MULTILINE,
    )
    by_admin = {admin: (address, preferred) for address, admin, preferred in rows}
    assert set(by_admin) == {"no", "yes"}
    user_address, preferred = by_admin["no"]
    assert preferred == "yes"
    # Router mode: clients mount the service address, reached through the tenant router.
    assert ipaddress.ip_address(user_address) in ipaddress.ip_network("10.254.0.0/28")
    assert by_admin["yes"][1] == "no"


def test_markdown_security_rules_admit_only_the_clients_and_the_host(dev_markdown: str) -> None:
    section = dev_markdown.split("#### Security rules", 1)[1].split("####", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `tcp`") or "icmp" in line]
    assert "| `tcp` | `2049` | `10.0.0.0/26` | `NFS clients` |" in rows
    assert "| `tcp` | `22` | `10.254.0.14/32` | `share commands over SSH` |" in rows
    assert not any("0.0.0.0/0" in row for row in rows)


def test_markdown_graph_has_an_edge_from_the_attachment_to_the_export(dev_markdown: str) -> None:
    graph = dev_markdown.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert graph.startswith("graph TD\n")
    assert "r_share_server_share_projects_attachment --> r_share_server_share_projects_export" in (
        graph
    )
    # Every arrow joins two declared nodes.
    declared = set(re.findall(r"^\s+(r_\w+)\[", graph, re.MULTILINE))
    for left, right in re.findall(r"^\s+(r_\w+) --> (r_\w+)$", graph, re.MULTILINE):
        assert {left, right} <= declared
    # The server waits for its ports, and is attached to only after it exists.
    assert "r_share_server_instance_server --> r_share_server_share_projects_attachment" in graph


def test_markdown_shows_the_script_each_share_runs(dev_markdown: str) -> None:
    section = dev_markdown.split("#### What each share runs", 1)[1].split("#### What runs", 1)[0]
    assert "**`projects`** (`share-server-share-projects-export`)" in section
    assert (
        "sudo -n bash -s -- ensure --name projects --volume-id "
        "<id of share-server-share-projects-volume> --protocol nfs --mount-root /shares "
        "--fstype ext4 --size-gib 10" in section
    )
    assert "--client rw:10.0.0.0/26" in section
    assert (
        "sudo -n bash -s -- delete --name projects --protocol nfs --mount-root /shares" in section
    )
    details = section.split("<details>", 1)[1].split("</details>", 1)[0]
    assert share_script().rstrip("\n") in details


def test_json_has_stable_keys_and_the_same_content(dev_json: dict[str, Any]) -> None:
    assert list(dev_json) == [
        "format_version",
        "project",
        "stack",
        "simulated",
        "notices",
        "share_server",
        "shares",
        "security_rules",
        "resources",
        "dependency_edges",
        "share_commands",
        "host_commands",
    ]
    assert dev_json["simulated"] is True
    assert any("placeholder key" in notice for notice in dev_json["notices"])
    resources = {r["name"]: r for r in dev_json["resources"]}
    assert resources["share-server-network-subnet"]["inputs"]["cidr"] == "10.254.0.0/28"
    assert resources["share-server-share-projects-volume"]["protect"] is True
    assert {"from": ATTACHMENT, "to": EXPORT} in dev_json["dependency_edges"]
    assert ATTACHMENT in resources[EXPORT]["depends_on"]
    assert dev_json["share_server"]["service_subnet_cidr"] == "10.254.0.0/28"
    locations = dev_json["shares"]["projects"]["export_locations"]
    assert [loc["path"].endswith(":/shares/projects") for loc in locations] == [True, True]
    commands = dev_json["share_commands"]["projects"]
    assert commands["resource"] == EXPORT
    assert commands["create"].startswith("sudo -n bash -s -- ensure --name projects ")
    # The exact command, script included, as the remote command receives it.
    assert commands["create"].endswith(f"\n{share_script()}DHSS_SHARE_SCRIPT\n")
    assert commands["update"] == commands["create"]


def test_json_never_holds_a_credential(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # With the host key the stack generates: its private half must not show either.
    config = dev_config()
    del config["dhss:backend"]["service_instance_host_key"]
    write_stack(tmp_path, config)
    code, out, _ = plan(capsys, "--stack", "t1", "--cwd", str(tmp_path), "--format", "json")
    assert code == 0
    assert "PRIVATE KEY" not in out
    connection = next(r for r in json.loads(out)["resources"] if r["name"] == EXPORT)["inputs"][
        "connection"
    ]
    assert connection["privateKey"] == "[secret]"
    assert connection["user"] == "manila"
    assert set(connection) <= {"host", "port", "user", "dialErrorLimit", "perDialTimeout"} | {
        "privateKey",
        "hostKey",  # the public half the commands pin (never the private key)
    }
    assert connection["hostKey"].startswith("ssh-ed25519 ")


def test_the_same_stack_plans_the_same_way_twice(
    capsys: pytest.CaptureFixture[str], dev_markdown: str
) -> None:
    # A pull request's plan changes only when the change does.
    _, again, _ = plan(capsys, "--stack", "dev", "--cwd", str(ROOT))
    assert again == dev_markdown


def test_existing_key_files_are_used_and_encrypted_values_are_not_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    public, private = write_key_pair(tmp_path)
    config = dev_config()
    config["dhss:backend"]["path_to_public_key"] = str(public)
    config["dhss:backend"]["path_to_private_key"] = str(private)
    config["dhss:backend"]["service_instance_password"] = {"secure": "v1:AAAA:ciphertext"}
    write_stack(tmp_path, config)
    code, out, _ = plan(capsys, "--stack", "t1", "--cwd", str(tmp_path), "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert not any("placeholder key" in notice for notice in document["notices"])
    assert any(
        "`dhss:backend.service_instance_password` is encrypted" in notice
        for notice in document["notices"]
    )
    keypair = next(r for r in document["resources"] if r["name"].endswith("-keypair"))
    assert keypair["inputs"]["publicKey"] == " ".join(public.read_text().split()[:2])
    export = next(r for r in document["resources"] if r["name"] == EXPORT)
    assert export["inputs"]["connection"]["password"] == "[secret]"
    assert "plan-placeholder-secret" not in out


def test_config_problems_are_listed_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = dev_config()
    config["dhss:backend"]["service_password"] = "manila"  # DevStack's near-miss
    config["dhss:backend"]["driver_handles_share_servers"] = False
    write_stack(tmp_path, config)
    code, out, err = plan(capsys, "--stack", "t1", "--cwd", str(tmp_path))
    assert code == 2
    assert out == ""
    assert "nothing was planned" in err
    assert (
        "dhss:backend.service_password: unknown key; did you mean service_instance_password?"
        in (err)
    )
    assert "dhss:backend.driver_handles_share_servers: must be true" in err
    assert "Traceback" not in err
    assert "manila" not in err.split("service_password", 1)[1].split("\n", 1)[0]


def test_a_missing_stack_names_the_stacks_there(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = plan(capsys, "--stack", "prod", "--cwd", str(ROOT))
    assert code == 2
    assert out == ""
    assert "Pulumi.prod.yaml: no such stack file" in err
    assert "dev" in err


def test_a_tenant_cidr_given_on_the_command_line_reaches_the_rules(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = plan(
        capsys, "--cwd", str(ROOT), "--format", "json", "--tenant-subnet-cidr", "10.0.0.0/24"
    )
    assert code == 0
    sources = {rule["remoteIpPrefix"] for rule in json.loads(out)["security_rules"]}
    assert "10.0.0.0/24" in sources  # the whole tenant subnet, holding the 10.0.0.0/26 rule
    code, _, err = plan(capsys, "--cwd", str(ROOT), "--tenant-subnet-cidr", "10.0.0.1/24")
    assert code == 2
    assert "--tenant-subnet-cidr" in err


def test_reduced_edges_leave_out_what_a_longer_path_implies() -> None:
    depends_on = {"volume": [], "server": [], "attach": ["server", "volume"]}
    depends_on["export"] = ["attach", "server", "volume"]
    assert sorted(reduced_edges(depends_on)) == [
        ("attach", "export"),
        ("server", "attach"),
        ("volume", "attach"),
    ]


# -- hostile values from the pull request's stack file ---------------------------------------------

HOSTILE = [
    "`a` ``b``",
    "<!-- the rest is hidden",
    "</details><details open>",
    "<script>alert(1)</script>",
    "x\n```mermaid\ngraph TD\n```",
    "a\n```\n# injected\n~~~~\n",
    "@everyone @octocat/team",
    "[click](https://evil.example) ![i](https://evil.example/i.png)",
    "a | b | c",
    "line one\nline two\r\n\u2028three",
    "*bold* _it_ ~~gone~~ # heading",
    "\\| \\` \\",
    "https://auto.link.example www.example.org",
    " `",
    "",
]


def hostile_plan(value: str) -> Any:
    """A plan whose every string that came from the stack file is ``value``."""
    from dhss_components.plan.model import Plan, PlannedResource, ShareCommands

    resource = PlannedResource(
        name=f"share-{value}",
        type="openstack:networking/secGroupRule:SecGroupRule",
        parent="share-server",
        custom=True,
        inputs={"description": value, "remoteIpPrefix": value, "nested": {value: [value]}},
        depends_on=(),
        protect=True,
        delete_before_replace=False,
        ignore_changes=(value,),
    )
    component = PlannedResource(
        "share-server", "dhss:index:ShareServer", None, False, {}, (), False, False, ()
    )
    script = f"bash -s -- ensure --name {value} <<'DHSS_SHARE_SCRIPT'\necho '{value}'\n"
    script += "DHSS_SHARE_SCRIPT\n"
    return Plan(
        project=value,
        stack=value,
        notices=(f"a notice about {value}", "a notice"),
        resources=(component, resource),
        edges=(),
        security_rules=({"protocol": value, "remoteIpPrefix": value, "description": value},),
        share_server={"network_mode": value, "service_subnet_cidr": value, "ssh_address": value},
        shares={
            value: {"share_proto": value, "size": value, "export_locations": [{"path": value}]}
        },
        share_commands=(ShareCommands(value, f"export-{value}", script, script, script),),
        host_commands=(),
    )


def markdown_structure(markdown: str) -> dict[str, Any]:
    """What a reader of the rendered comment sees of its structure, parsed as GitHub does
    (CommonMark and GFM tables), and the code spans' texts."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").enable("strikethrough").parse(markdown)
    inline = [child for token in tokens for child in token.children or []]
    texts = " ".join(c.content for c in inline if c.type == "text")
    return {
        "blocks": [t.type for t in tokens if t.type != "inline"],
        "fences": [(t.info, t.map[0] if t.map else None) for t in tokens if t.type == "fence"],
        "html": [
            re.sub(r"\(\d+ lines, sha256 [0-9a-f]+…\)", "", html)
            for html in [t.content for t in tokens if t.type == "html_block"]
            + [c.content for c in inline if c.type == "html_inline"]
        ],
        "marks": sorted({c.type for c in inline} - {"text", "code_inline", "softbreak"}),
        "mentions": re.findall(r"@\w", texts),
        "code": [c.content for c in inline if c.type == "code_inline"],
    }


def unvisible(text: str) -> str:
    """The inverse of render.visible."""
    return re.sub(
        r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})",
        lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1)[1:], 16)),
        text,
    )


def check_inert(value: str) -> None:
    from dhss_components.plan.render import render_markdown

    benign = markdown_structure(render_markdown(hostile_plan("plain")))
    hostile = markdown_structure(render_markdown(hostile_plan(value)))
    # The same tables with the same rows, the same details blocks and fences, no link,
    # image, emphasis or HTML of the value's own, nobody mentioned.
    assert hostile["blocks"] == benign["blocks"]
    assert hostile["html"] == benign["html"]
    assert [info for info, _ in hostile["fences"]] == [info for info, _ in benign["fences"]]
    assert hostile["marks"] == benign["marks"]
    assert hostile["mentions"] == []
    # And the value reads as exactly itself wherever it is shown as a value.
    if value:
        shown = [unvisible(c) for c in hostile["code"]]
        assert shown.count(value) >= 8, (value, hostile["code"])


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_in_the_stack_file_changes_nothing_in_the_comment(value: str) -> None:
    check_inert(value)


@given(value=st.text(alphabet=st.sampled_from("`<>!-[]()|\\\n\r@*_~#&:/ ax"), max_size=20))
@settings(max_examples=200, deadline=None)
def test_any_string_in_the_stack_file_is_shown_as_text_and_changes_no_structure(
    value: str,
) -> None:
    check_inert(value)
