"""Per-tenant stack config: what the fleet sets on each tenant's stack, decided up front.

The program reads three objects (``dhss:backend``, ``dhss:shareNetwork``, ``dhss:shares``) and
the provider reads ``openstack:cloud``. The fleet sets exactly these, as JSON, with the service
subnet block it allocated pinned in ``dhss:shareNetwork.service_subnet_cidr``. A backend that
carries a password is set as a secret as a whole (the program reads it as one object), so the
password is encrypted in the stack's config and never shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi.automation import ConfigValue

from ..config import NAMESPACE, InvalidStackConfig, Problem, parse_stack_config
from ..naming import service_subnet_name
from .allocation import Ledger, SubnetRequest, host_pool
from .tenants import CLOUD_KEY, Tenant

MANAGED_PREFIXES = (f"{NAMESPACE}:",)
MANAGED_KEYS = (CLOUD_KEY,)


@dataclass(frozen=True)
class TenantStack:
    """Everything one tenant's run needs, decided before any stack is touched."""

    tenant: Tenant
    work_dir: Path
    config: Mapping[str, ConfigValue]
    service_subnet_cidr: str | None

    @property
    def stack_name(self) -> str:
        return self.tenant.name


def subnet_request(tenant: Tenant) -> SubnetRequest | None:
    """The tenant's claim on a shared pool of service subnet blocks, if it has one.

    A service network given by id is shared by its tenants. A stack without one makes a
    service network of its own, but its host port is plugged on ``service_network_host``
    beside every other such tenant's: their blocks share one pool per host (``host_pool``).
    Only with the Noop driver (nothing plugged) is such a network the stack's alone; Manila's
    mode C uses none.
    """
    backend = tenant.spec.backend
    if not backend.network_mode.service_subnet:
        return None
    if backend.service_network_id is not None:
        network_id, in_cloud = backend.service_network_id, True
    elif backend.driver.plugs_host_port and backend.service_network_host is not None:
        network_id, in_cloud = host_pool(backend.service_network_host), False
    else:
        return None
    return SubnetRequest(
        tenant=tenant.name,
        network_id=network_id,
        pool=backend.service_network_cidr,
        mask=backend.service_network_division_mask,
        pinned=tenant.spec.share_network.service_subnet_cidr,
        subnet_name=service_subnet_name(tenant.spec.share_network.neutron_subnet_id),
        host=backend.service_network_host if backend.driver.plugs_host_port else None,
        in_cloud=in_cloud,
    )


def given_cidrs(ledger: Ledger, tenants: Iterable[Tenant]) -> dict[str, str]:
    """Each tenant's block as it stands (its own pin, else the ledger's), giving none out."""
    cidrs = {}
    for tenant in tenants:
        request = subnet_request(tenant)
        if request is None:
            continue
        given = ledger.get(request.network_id, {}).get(tenant.name)
        cidr = str(request.pinned) if request.pinned is not None else given
        if cidr is not None:
            cidrs[tenant.name] = cidr
    return cidrs


def share_network_with(tenant: Tenant, cidr: str | None) -> dict[str, Any]:
    share_network = dict(tenant.share_network)
    if cidr is not None:
        share_network["service_subnet_cidr"] = cidr
    return share_network


def tenant_config(tenant: Tenant, service_subnet_cidr: str | None) -> dict[str, ConfigValue]:
    """The stack config for one tenant, as the Automation API sets it."""
    config = {
        f"{NAMESPACE}:backend": ConfigValue(
            json.dumps(dict(tenant.backend), sort_keys=True), secret=tenant.has_secrets
        ),
        f"{NAMESPACE}:shareNetwork": ConfigValue(
            json.dumps(share_network_with(tenant, service_subnet_cidr), sort_keys=True)
        ),
        f"{NAMESPACE}:shares": ConfigValue(json.dumps(list(tenant.shares))),
    }
    if tenant.cloud is not None:
        config[CLOUD_KEY] = ConfigValue(tenant.cloud)
    return config


def stale_keys(existing: Iterable[str], wanted: Mapping[str, ConfigValue]) -> list[str]:
    """Keys the fleet manages that the stack has but the tenants file no longer sets (an
    ``openstack:cloud`` override that was removed must stop applying)."""
    return sorted(
        key
        for key in existing
        if key not in wanted and (key.startswith(MANAGED_PREFIXES) or key in MANAGED_KEYS)
    )


def final_config_problems(tenant: Tenant, service_subnet_cidr: str | None) -> Sequence[Problem]:
    """Validate the config as the stack will see it, with the pinned block."""
    try:
        parse_stack_config(
            dict(tenant.backend),
            share_network_with(tenant, service_subnet_cidr),
            list(tenant.shares),
        )
    except InvalidStackConfig as exc:
        return [
            Problem(f"tenants[{tenant.name}].{p.key.removeprefix(NAMESPACE + ':')}", p.message)
            for p in exc.problems
        ]
    return []
