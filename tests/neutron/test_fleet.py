"""The fleet on a real Neutron: twenty tenants on one service network that already holds
subnets the fleet did not make, and two fleets on two machines giving blocks at once.

The fleet runs as an operator runs it (``python -m dhss_components.fleet``, the Automation API,
the stand-in CLI of tests/fleet), and every tenant's program and the fleet's own read of the
service network meet the real ``neutron-server`` (``standin/real_neutron.py``): the subnets,
router interfaces, ports, groups and rules are made, kept and deleted in Neutron, which
refuses any overlap with its own message. So "no block overlaps anything" is Neutron's word,
not the allocator's.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from dhss_components.fleet.results import EXIT_OK
from dhss_components.naming import service_subnet_name
from tests.fleet.fleet_env import Bed, FleetRun, write_yaml
from tests.fleet.standin.install import write_settings

from .client import NeutronClient
from .clouds import SERVICE_IMAGE, Builder, Cloud, busy_cloud, stack_config
from .held import without_bookkeeping

TENANTS = 20
HAND_MADE = "10.254.3.0/26"
"""On the service network, neither the fleet's nor Manila's: another mask, another name."""


def tenant(index: int) -> str:
    return f"tenant-{index:02d}"


UNLIMITED = {"quota": {"security_group": -1, "security_group_rule": -1, "port": -1}}
"""Manila's service project holds every share server's group, rules and ports: its quotas are
raised, as Manila's install guide asks of the operator."""


def cloud_with_tenants(
    neutron: NeutronClient, prefix: str, indices: range
) -> tuple[Cloud, dict[int, dict[str, str]]]:
    """The busy cloud (Manila's own service subnets on the service network, one of them of an
    older mask; other routers' subnets), a hand-made subnet on the service network, and each
    tenant, in a project of its own: its network, subnet (10.<100+i>.0.0/24) and router.
    ``cloud.projects`` names them all."""
    cloud = busy_cloud(neutron, prefix)
    build = Builder(neutron, prefix)
    neutron.request("PUT", f"/quotas/{cloud.service_project}", UNLIMITED)
    build.subnet(cloud.service_project, cloud.service_net, HAND_MADE, "made-by-hand")
    networks = {}
    for index in indices:
        project = build.project(tenant(index))
        net = build.network(project, f"{tenant(index)}-net")
        subnet = build.subnet(project, net, f"10.{100 + index}.0.0/24", tenant(index))
        build.router(project, f"{tenant(index)}-router", subnet)
        networks[index] = {"net": net, "subnet": subnet, "cidr": f"10.{100 + index}.0.0/24"}
    projects = (*cloud.projects, *(build.project(tenant(i)) for i in indices))
    return replace(cloud, projects=projects), networks


def tenants_document(
    cloud: Cloud, keys: tuple[Path, Path], networks: dict[int, dict[str, str]], indices: range
) -> dict[str, Any]:
    backend = copy.deepcopy(stack_config(cloud, keys, "router", "ovs")["backend"])
    return {
        "backend": backend,
        "tenants": {
            tenant(i): {
                "shareNetwork": {
                    "neutron_net_id": networks[i]["net"],
                    "neutron_subnet_id": networks[i]["subnet"],
                },
                "shares": [
                    {
                        "name": "projects",
                        "size": 1,
                        "share_proto": "NFS",
                        "access_rules": [{"access_type": "ip", "access_to": networks[i]["cidr"]}],
                    }
                ],
            }
            for i in indices
        },
    }


def on_neutron(bed: Bed, neutron: NeutronClient, cloud: Cloud, **settings: Any) -> None:
    write_settings(
        bed.cli,
        {
            "neutron": {
                "endpoint": neutron.endpoint,
                "project": cloud.service_project,
                "image": SERVICE_IMAGE,
                "log": str(neutron.server_log),
            },
            **settings,
        },
    )


def service_subnets(neutron: NeutronClient, cloud: Cloud) -> dict[str, str]:
    """Name -> CIDR of every subnet the service network holds."""
    return {s["name"]: s["cidr"] for s in neutron.list("subnets", network_id=cloud.service_net)}


def ledger(bed: Bed, cloud: Cloud) -> dict[str, str]:
    """The blocks this machine's fleet gave on the service network."""
    path = bed.work / "service-subnets.json"
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text())["service_networks"].get(cloud.service_net, {}))


def disjoint(cidrs: list[str]) -> bool:
    nets = [ipaddress.ip_network(c) for c in cidrs]
    return not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def test_twenty_tenants_on_a_service_network_in_use(
    bed: Bed, neutron: NeutronClient, prefix: str
) -> None:
    indices = range(TENANTS)
    cloud, networks = cloud_with_tenants(neutron, prefix, indices)
    foreign = service_subnets(neutron, cloud)
    assert len(foreign) == 3  # Manila's two (one an older /24) and the hand-made /26
    on_neutron(bed, neutron, cloud)
    path = write_yaml(
        bed.tmp / "tenants.yaml", tenants_document(cloud, bed.keys, networks, indices)
    )
    before = neutron.dump(cloud.projects)

    up = bed.fleet("up", str(path), "--parallel", "4")

    assert up.code == EXIT_OK, up.stdout + up.stderr
    rows = up.rows()
    assert sorted(rows) == [tenant(i) for i in indices]
    assert {row[2] for row in rows.values()} == {"ok"}
    assert "taken meanwhile" not in up.stdout  # read from the cloud first: nothing refused
    # Neutron holds every tenant's service subnet, under Manila's name, on the block the
    # fleet gave, and nothing on the service network overlaps anything else on it.
    given = ledger(bed, cloud)
    held = service_subnets(neutron, cloud)
    for i in indices:
        assert held[service_subnet_name(networks[i]["subnet"])] == given[tenant(i)]
    assert {k: v for k, v in held.items() if k in foreign} == foreign
    assert len(held) == len(foreign) + TENANTS
    assert disjoint(list(held.values()))
    # Each is joined to its tenant's router (Neutron checked it against the router's subnets).
    joined = {
        ip["subnet_id"]
        for port in neutron.list("ports", device_owner="network:router_interface")
        for ip in port["fixed_ips"]
    }
    for subnet in neutron.list("subnets", network_id=cloud.service_net):
        if subnet["cidr"] in given.values():
            assert subnet["id"] in joined, subnet

    # A re-run moves nothing: no block, and not one write to Neutron.
    dump = neutron.dump(cloud.projects)
    again = bed.fleet("up", str(path), "--parallel", "4")
    assert again.code == EXIT_OK, again.stdout
    assert {row[3] for row in again.rows().values()} == {"none"}
    assert ledger(bed, cloud) == given
    assert neutron.dump(cloud.projects) == dump

    # Destroy: Neutron holds exactly what it held before (but for its own bookkeeping).
    gone = bed.fleet("destroy", str(path), "--parallel", "4")
    assert gone.code == EXIT_OK, gone.stdout
    assert without_bookkeeping(neutron.dump(cloud.projects)) == without_bookkeeping(before)
    assert ledger(bed, cloud) == {}


def test_two_fleets_at_once_are_arbitrated_by_neutron(
    bed: Bed, neutron: NeutronClient, prefix: str
) -> None:
    first, second = range(0, 2), range(2, 4)
    cloud, networks = cloud_with_tenants(neutron, prefix, range(4))
    release = bed.tmp / "go"
    # The second machine's tenants wait just before Neutron makes their subnets, after their
    # programs' discovery has found their blocks free.
    on_neutron(bed, neutron, cloud, hold_subnet={tenant(i): str(release) for i in second})
    first_file = write_yaml(
        bed.tmp / "first.yaml", tenants_document(cloud, bed.keys, networks, first)
    )
    second_file = write_yaml(
        bed.tmp / "second.yaml", tenants_document(cloud, bed.keys, networks, second)
    )
    other_machine = replace(bed, work=bed.tmp / "work-of-the-other-machine")
    runs: list[FleetRun] = []
    thread = threading.Thread(
        target=lambda: runs.append(other_machine.fleet("up", str(second_file)))
    )
    thread.start()
    try:
        its_ledger = other_machine.work / "service-subnets.json"
        for _ in range(1200):
            if its_ledger.exists():
                break
            threading.Event().wait(0.05)
        given_second = ledger(other_machine, cloud)
        done = bed.fleet("up", str(first_file))
        assert done.code == EXIT_OK, done.stdout + done.stderr
        assert set(ledger(bed, cloud).values()) == set(given_second.values())  # the same blocks
    finally:
        release.touch()
        thread.join(300)
    (second_run,) = runs

    assert second_run.code == EXIT_OK, second_run.stdout + second_run.stderr
    assert "was taken meanwhile by another subnet on the service network" in second_run.stdout
    (log,) = (other_machine.work / "logs").glob(f"*-up/{tenant(2)}.log")
    assert "overlaps with another subnet" in log.read_text()  # Neutron's own refusal
    held = service_subnets(neutron, cloud)
    mine = {**ledger(bed, cloud), **ledger(other_machine, cloud)}
    for i in range(4):
        assert held[service_subnet_name(networks[i]["subnet"])] == mine[tenant(i)]
    assert disjoint(list(held.values()))


def test_a_tenants_router_subnet_in_the_pool_is_never_its_block(
    bed: Bed, neutron: NeutronClient, prefix: str
) -> None:
    # tenant-00's router also joins a lab subnet inside service_network_cidr, on the very
    # blocks the service network leaves free first. Its stack's discovery refuses those (and
    # Neutron would refuse the router interface): the fleet must give it another.
    lab = "10.254.0.0/26"
    indices = range(2)
    cloud, networks = cloud_with_tenants(neutron, prefix, indices)
    build = Builder(neutron, prefix)
    project = build.project(tenant(0))
    lab_net = build.network(project, "lab")
    lab_subnet = build.subnet(project, lab_net, lab, "lab-subnet")
    (router,) = [
        p["device_id"]
        for p in neutron.list("ports", device_owner="network:router_interface")
        if any(ip["subnet_id"] == networks[0]["subnet"] for ip in p["fixed_ips"])
    ]
    neutron.add_router_interface(router, {"subnet_id": lab_subnet})
    on_neutron(bed, neutron, cloud)
    path = write_yaml(
        bed.tmp / "tenants.yaml", tenants_document(cloud, bed.keys, networks, indices)
    )

    up = bed.fleet("up", str(path))

    assert up.code == EXIT_OK, up.stdout + up.stderr
    given = ledger(bed, cloud)
    assert not ipaddress.ip_network(given[tenant(0)]).overlaps(ipaddress.ip_network(lab))
    # Neutron made it and joined it to the router that holds the lab subnet.
    held = service_subnets(neutron, cloud)
    assert held[service_subnet_name(networks[0]["subnet"])] == given[tenant(0)]
    on_router = {
        ip["subnet_id"]
        for p in neutron.list("ports", device_id=router, device_owner="network:router_interface")
        for ip in p["fixed_ips"]
    }
    (made,) = [
        s["id"]
        for s in neutron.list("subnets", network_id=cloud.service_net)
        if s["cidr"] == given[tenant(0)]
    ]
    assert made in on_router
    assert bed.fleet("destroy", str(path)).code == EXIT_OK
