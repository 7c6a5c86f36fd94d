"""What the stack learnt from the cloud: discovery's answer, the blueprint's second input."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class CloudFacts:
    tenant_subnet_cidr: ipaddress.IPv4Network
    router_id: str | None
    """The tenant subnet's router, in the router modes."""
    image_id: str
    service_subnet_cidr: ipaddress.IPv4Network | None
    """Free of every subnet on the service network and on the router; None without one."""
    admin_subnet_cidr: ipaddress.IPv4Network | None
