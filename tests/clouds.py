"""The clouds the tests run against: a DevStack-like one, with the ids of Pulumi.dev.yaml."""

from __future__ import annotations

from dhss_components.simulated_cloud import SimulatedCloud

DEVSTACK_TENANT_NET = "9ab1d3f4-2c1e-4f53-9d53-6c2c1a7e0a11"
DEVSTACK_TENANT_SUBNET = "5f0c7e2a-8d3b-4b6e-a1f4-3c9d2e7b8a21"
DEVSTACK_ADMIN_NET = "dd07dbd2-cb02-4ef3-a8c0-5b3e75013c92"
DEVSTACK_ADMIN_SUBNET = "2c745913-7766-45b3-abfc-33a527e5185b"
DEVSTACK_SERVICE_NET = "b7d1a0c3-4e5f-4a6b-8c7d-9e0f1a2b3c41"


def devstack_cloud() -> SimulatedCloud:
    """A DevStack with the generic driver: a private tenant network behind router1, an admin
    network, the manila_service_network, and one active manila-service-image-master."""
    cloud = SimulatedCloud()
    cloud.add_network("private", DEVSTACK_TENANT_NET)
    cloud.add_subnet(
        DEVSTACK_TENANT_NET, "10.0.0.0/26", name="private-subnet", subnet_id=DEVSTACK_TENANT_SUBNET
    )
    cloud.add_router(DEVSTACK_TENANT_SUBNET, "4c9e2a10-6b7d-4f3e-9a8c-1d2e3f4a5b61")
    cloud.add_network("admin_net", DEVSTACK_ADMIN_NET)
    cloud.add_subnet(
        DEVSTACK_ADMIN_NET, "10.2.5.0/24", name="admin_subnet", subnet_id=DEVSTACK_ADMIN_SUBNET
    )
    cloud.add_network("manila_service_network", DEVSTACK_SERVICE_NET)
    cloud.add_image("manila-service-image-master")
    cloud.add_image("cirros-0.6.2-x86_64-disk")
    return cloud
