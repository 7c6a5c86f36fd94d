"""Names of everything the stack declares, as Manila names them.

Manila's names carry ids that Manila allocates (share server id, share instance id). A stack
has no such ids, so it derives stable ones: the share server id is a UUIDv5 of the Pulumi
project, stack and tenant subnet, the share id a UUIDv5 of the share server id and the share
name. They are the same on every run, and two tenants' stacks on one cloud never share one.
"""

from __future__ import annotations

import uuid

# A fixed namespace so every installation derives the same ids from the same inputs.
_NAMESPACE = uuid.UUID("6f1c3a52-52b4-4a0e-9d3c-5a1d0c6e2b7d")


def share_server_id(project: str, stack: str, neutron_subnet_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{project}/{stack}/{neutron_subnet_id}"))


def share_id(server_id: str, share_name: str) -> str:
    return str(uuid.uuid5(uuid.UUID(server_id), share_name))


def service_subnet_name(neutron_subnet_id: str) -> str:
    """Manila's exact name, so an operator finds the subnet where Manila would put it."""
    return f"service_subnet_for_handling_of_share_server_for_tenant_subnet_{neutron_subnet_id}"


def service_instance_name(template: str, backend_name: str, server_id: str) -> str:
    """Manila: service_instance_name_template % "<config group>_<share server id>"."""
    return template % f"{backend_name}_{server_id}"


def keypair_name(base: str, server_id: str) -> str:
    # Nova keypairs are per user, and every tenant's stack runs as the same admin user:
    # Manila's single shared name would make two stacks fight over one keypair.
    return f"{base}-{server_id}"


def security_group_name(base: str, server_id: str) -> str:
    # One group per share server: its rules are this tenant's CIDRs only.
    return f"{base}-{server_id}"


def volume_name(template: str, share_instance_id: str) -> str:
    return template % share_instance_id


def mount_path(share_mount_path: str, share_name: str) -> str:
    return f"{share_mount_path.rstrip('/')}/{share_name}"


def host_port_device_id(role: str, server_id: str) -> str:
    """The host port's device id: Manila's ``manila-share``/``manila-admin-share`` made this
    share server's own. Manila finds its own host port by device id and host alone (and stops
    on "Ambiguous service ports" when it finds two), so a stack's port never takes its name."""
    kind = "admin-share" if role == "admin" else "share"
    return f"manila-dhss-{kind}-{server_id}"
