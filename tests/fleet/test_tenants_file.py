"""The tenants file: what an operator writes, and what they are told when it is wrong."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dhss_components.fleet.tenants import (
    STACK_NAME,
    InvalidTenantsFile,
    load_tenants_file,
    parse_tenants,
    workspace_dir,
)
from dhss_components.operator_files import excerpt
from tests.fleet.fleet_env import tenant_entry, tenants_document, write_yaml
from tests.stack_run import write_key_pair


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    return tenants_document(write_key_pair(tmp_path), [1, 2, 3])


def problems(document: Any) -> list[str]:
    with pytest.raises(InvalidTenantsFile) as caught:
        parse_tenants(document)
    return [str(p) for p in caught.value.problems]


def test_each_tenant_gets_the_shared_backend_with_its_own_overrides(
    document: dict[str, Any],
) -> None:
    document["openstack:cloud"] = "devstack-admin"
    document["tenants"]["tenant-02"]["backend"] = {"share_backend_name": "GOLD"}
    document["tenants"]["tenant-03"]["openstack:cloud"] = "region-two"

    parsed = parse_tenants(document)

    assert parsed.names == ("tenant-01", "tenant-02", "tenant-03")
    one, two, three = parsed.tenants
    assert one.spec.backend.share_backend_name == "GENERIC1"
    assert two.spec.backend.share_backend_name == "GOLD"
    assert two.spec.backend.service_network_host == "devstack"  # the rest is shared
    assert (one.cloud, two.cloud, three.cloud) == ("devstack-admin", "devstack-admin", "region-two")
    assert three.spec.shares[0].size == 4


def test_every_problem_is_reported_at_once_naming_the_tenant_and_the_key(
    document: dict[str, Any],
) -> None:
    document["tenants"]["tenant-01"]["shares"][0]["size"] = "ten"
    document["tenants"]["tenant-02"]["shareNetwork"]["neutron_subnet_id"] = "private-subnet"
    document["tenants"]["tenant-03"]["backend"] = {"share_volume_fstype": "xfs"}
    document["tenants"]["tenant-03"]["sharez"] = []

    found = problems(document)

    assert len(found) == 4
    assert any(p.startswith("tenants[tenant-01].shares[0].size: 'ten'") for p in found)
    assert any(
        p.startswith("tenants[tenant-02].shareNetwork.neutron_subnet_id: 'private-subnet' is not")
        for p in found
    )
    assert any(p.startswith("tenants[tenant-03].backend.share_volume_fstype: 'xfs'") for p in found)
    assert "tenants[tenant-03].sharez: unknown key; did you mean shares?" in found


def test_a_problem_in_the_shared_backend_is_reported_once(document: dict[str, Any]) -> None:
    document["backend"]["service_netwrok_host"] = document["backend"].pop("service_network_host")

    found = problems(document)

    # Once for the file, not once for each of the three tenants that inherit it.
    assert found == [
        "backend.service_netwrok_host: unknown key; did you mean service_network_host?"
    ]


def test_an_override_that_fixes_the_shared_problem_is_not_blamed(
    document: dict[str, Any],
) -> None:
    del document["backend"]["service_network_host"]
    for name in ("tenant-01", "tenant-02"):
        document["tenants"][name]["backend"] = {"service_network_host": "compute-1"}

    found = problems(document)

    # Only tenant-03 lacks it; the section that lacks it is the shared one.
    assert [p.split(":")[0] for p in found] == ["backend.service_network_host"]


def test_two_tenants_of_one_name_are_an_error_not_a_silent_loss(tmp_path: Path) -> None:
    text = yaml.safe_dump(tenants_document(write_key_pair(tmp_path), [1]))
    entry = yaml.safe_dump({"tenant-01": tenant_entry(2)})
    duplicated = text + "".join(f"  {line}\n" for line in entry.splitlines())
    path = tmp_path / "tenants.yaml"
    path.write_text(duplicated)

    with pytest.raises(InvalidTenantsFile, match="duplicate key 'tenant-01'"):
        load_tenants_file(path)


def test_two_tenants_on_one_tenant_subnet_are_refused(document: dict[str, Any]) -> None:
    document["tenants"]["tenant-02"]["shareNetwork"] = document["tenants"]["tenant-01"][
        "shareNetwork"
    ]

    (found,) = problems(document)

    assert found.startswith("tenants[tenant-02].shareNetwork.neutron_subnet_id: tenant tenant-01")


@pytest.mark.parametrize(
    ("name", "ok"),
    [("tenant-a", True), ("acme.prod_1", True), ("acme/prod", False), ("", False), ("a b", False)],
)
def test_stack_names_follow_pulumis_rule(document: dict[str, Any], name: str, ok: bool) -> None:
    document["tenants"] = {name: tenant_entry(1)}
    if ok:
        assert parse_tenants(document).names == (name,)
    else:
        assert problems(document) == [
            f"tenants[{name}]: not a stack name: use 1-100 letters, digits, '-', '_' or '.' "
            "(the key is the tenant's stack name)"
        ]


def test_a_password_can_be_kept_out_of_the_file(
    tmp_path: Path, document: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MANILA_PASSWORD", "from-env")
    (tmp_path / "gold.secret").write_text("from-file\n")
    document["backend"]["service_instance_password"] = {"env": "MANILA_PASSWORD"}
    document["tenants"]["tenant-02"]["backend"] = {
        "service_instance_password": {"file": "gold.secret"}
    }
    path = write_yaml(tmp_path / "tenants.yaml", document)

    one, two, _ = load_tenants_file(path).tenants

    assert one.backend["service_instance_password"] == "from-env"
    assert two.backend["service_instance_password"] == "from-file"  # relative to the file
    assert one.has_secrets
    monkeypatch.delenv("MANILA_PASSWORD")
    with pytest.raises(InvalidTenantsFile, match="environment variable MANILA_PASSWORD is not set"):
        load_tenants_file(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "missing.yaml: no such file; check the path; no stack was touched"),
        (b"tenants:\n  a: [\n", "tenants.yaml, line 3, column 1: not valid YAML: "),
        (b"tenants:\n  caf\xe9: {}\n", "tenants.yaml, line 2, column 6: not UTF-8 text"),
        (b"tenants:\n  ? [a, b]\n  : {}\n", "tenants.yaml, line 2, column 5: a key must be"),
        (b"tenants: " + b"[" * 50, "tenants.yaml, line 1, column 41: lists and mappings nested"),
    ],
)
def test_an_unreadable_file_is_one_line_naming_the_place(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / ("missing.yaml" if content is None else "tenants.yaml")
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(InvalidTenantsFile) as caught:
        load_tenants_file(path)

    assert str(caught.value).startswith(f"{tmp_path}/{message}")
    assert "\n" not in str(caught.value)


def test_a_yaml_error_never_shows_the_line_that_holds_a_password(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text("backend:\n  service_instance_password: 'hunter2\ntenants: {}\n")

    with pytest.raises(InvalidTenantsFile) as caught:
        load_tenants_file(path)

    assert "line 4" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_an_alias_bomb_is_refused_before_any_tenant_is_looked_at(tmp_path: Path) -> None:
    # Nine levels of nine aliases (387 million values once expanded) where a boolean belongs:
    # an error message that quoted the expanded value once took 31 s, 2.9 GB and 720 MB.
    laughs = ["  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
        f"  {level}: &{level} [" + ", ".join([f"*{prev}"] * 9) + "]"
        for prev, level in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    path = tmp_path / "tenants.yaml"
    path.write_text(
        "lol:\n" + "\n".join(laughs) + "\nbackend:\n  driver_handles_share_servers: *i\n"
    )

    with pytest.raises(InvalidTenantsFile) as caught:
        load_tenants_file(path)

    assert str(caught.value) == (
        f"{path}, line 7, column 18: more than 200000 values once its aliases are expanded "
        "(an alias bomb?); write the values out, or alias less; no stack was touched"
    )


def test_anchors_and_merge_keys_share_settings_between_tenants(tmp_path: Path) -> None:
    document = tenants_document(write_key_pair(tmp_path), [1, 2])
    text = yaml.safe_dump(document, sort_keys=False)
    # tenant-01 names its overrides; tenant-02 merges them and changes one.
    text = text.replace(
        "  tenant-01:\n",
        "  tenant-01:\n    backend: &gold {share_backend_name: GOLD, cinder_volume_type: ssd}\n",
    ).replace(
        "  tenant-02:\n",
        "  tenant-02:\n    backend: {<<: *gold, cinder_volume_type: hdd}\n",
    )
    path = tmp_path / "tenants.yaml"
    path.write_text(text)

    one, two = load_tenants_file(path).tenants

    assert (one.spec.backend.share_backend_name, one.spec.backend.cinder_volume_type) == (
        "GOLD",
        "ssd",
    )
    assert (two.spec.backend.share_backend_name, two.spec.backend.cinder_volume_type) == (
        "GOLD",
        "hdd",
    )


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_and_dot_dot_are_no_tenant_names(document: dict[str, Any], name: str) -> None:
    document["tenants"] = {name: tenant_entry(1), "tenant-02": tenant_entry(2)}

    assert problems(document) == [
        f"tenants[{name}]: {name!r} names a directory's parent or itself, not a workspace of its "
        "own; give the tenant a name with a letter or digit (the key is its stack name)"
    ]


@pytest.mark.parametrize("name", ["-x", "--stack", "-", "_private", ".hidden"])
def test_a_name_that_could_be_read_as_an_option_is_no_tenant_name(
    document: dict[str, Any], name: str
) -> None:
    # A stack name is passed to `pulumi stack init NAME`: "--stack" there is an option.
    document["tenants"] = {name: tenant_entry(1), "tenant-02": tenant_entry(2)}

    assert problems(document) == [
        f"tenants[{name}]: starts with {name[0]!r}: a tenant's name must start with a letter or "
        "a digit (a name starting with '-' would be read as an option by the pulumi CLI it is "
        "passed to; one starting with '.' or '_' is a hidden or private name); rename the tenant"
    ]


def test_the_fleets_own_stack_names_are_no_tenant_names(document: dict[str, Any]) -> None:
    # The stack that reads a service network's subnets is named after the network.
    name = "manila-dhss-service-network-b7d1a0c3-4e5f-4a6b-8c7d-9e0f1a2b3c41"
    document["tenants"] = {name: tenant_entry(1), "tenant-02": tenant_entry(2)}

    assert problems(document) == [
        f"tenants[{excerpt(name)}]: names starting with manila-dhss-service-network- are the "
        "fleet's own "
        "read-only stacks (what a service network holds); give the tenant another name"
    ]


@given(
    name=st.sampled_from([".", "..", "a/..", "", "-", ".hidden", "a" * 101])
    | st.from_regex(r"[A-Za-z0-9_./-]{1,102}", fullmatch=True)
)
def test_a_workspace_is_always_its_own_directory_under_the_stacks_directory(name: str) -> None:
    stacks = Path("/fleet/stacks")
    try:
        workspace = workspace_dir(stacks, name)
    except ValueError:
        assert not name[:1].isalnum() or not STACK_NAME.fullmatch(name)
        return
    assert Path(os.path.normpath(workspace)).parent == stacks
    assert workspace.name == name


def test_a_secret_file_is_taken_as_written_but_for_its_final_line_ending(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    (tmp_path / "spaces.secret").write_text("  two spaces either side  \n")
    (tmp_path / "latin1.secret").write_bytes("pässwörd\n".encode("latin-1"))
    document["backend"]["service_instance_password"] = {"file": "spaces.secret"}
    path = write_yaml(tmp_path / "tenants.yaml", document)

    assert load_tenants_file(path).tenants[0].backend["service_instance_password"] == (
        "  two spaces either side  "
    )

    document["backend"]["service_instance_password"] = {"file": "latin1.secret"}
    write_yaml(path, document)
    with pytest.raises(InvalidTenantsFile) as caught:
        load_tenants_file(path)
    # The key and the file, and nothing of the secret: not its bytes, not where they are.
    assert [str(p) for p in caught.value.problems] == [
        f"backend.service_instance_password: {tmp_path}/latin1.secret: not UTF-8 text (its "
        "bytes are not shown: they are a secret's); save it as UTF-8"
    ]
    assert "0xe4" not in str(caught.value)
    assert "column" not in str(caught.value)


def test_a_key_file_that_is_not_text_is_named_with_its_key_and_none_of_its_bytes(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    key = tmp_path / "id_latin1"
    key.write_bytes(
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r\xe9\xff\n"
        b"-----END OPENSSH PRIVATE KEY-----\n"
    )
    document["tenants"]["tenant-02"]["backend"] = {"path_to_private_key": str(key)}

    (found,) = problems(document)

    assert found == (
        f"tenants[tenant-02].backend.path_to_private_key: {key}: not UTF-8 text (its bytes are "
        "not shown: they are a secret's); point it at the private key file (PEM or OpenSSH, "
        "which are ASCII)"
    )


def test_tenants_are_selected_by_name_with_a_hint_for_typos(document: dict[str, Any]) -> None:
    parsed = parse_tenants(document)

    assert [t.name for t in parsed.select(["tenant-03", "tenant-01"])] == ["tenant-01", "tenant-03"]
    with pytest.raises(InvalidTenantsFile, match="did you mean tenant-01"):
        parsed.select(["tenant-1"])


def test_the_example_tenants_file_is_valid(tmp_path: Path) -> None:
    example = yaml.safe_load((Path(__file__).parents[2] / "examples" / "tenants.yaml").read_text())
    public, private = write_key_pair(tmp_path)  # the example's ~/.ssh keys are not here
    example["backend"].update(path_to_public_key=str(public), path_to_private_key=str(private))

    parsed = parse_tenants(example)

    assert parsed.names == ("acme", "globex")
    acme, globex = parsed.tenants
    assert (acme.cloud, globex.cloud) == ("devstack-admin", "region-two")
    assert globex.spec.backend.cinder_volume_type == "ssd"
    assert str(globex.spec.share_network.service_subnet_cidr) == "10.254.200.0/28"
