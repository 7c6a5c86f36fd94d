"""The tenants file: what an operator writes, and what they are told when it is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dhss_components.fleet.tenants import InvalidTenantsFile, load_tenants_file, parse_tenants
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


def test_unreadable_files_are_reported_without_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(InvalidTenantsFile, match=r"\(file\): cannot be read"):
        load_tenants_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tenants:\n  a: [\n")
    with pytest.raises(InvalidTenantsFile, match="line 3: not valid YAML"):
        load_tenants_file(broken)


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
    assert globex.spec.share_network.service_subnet_cidr == "10.254.200.0/28"
