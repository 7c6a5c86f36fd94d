"""Which input changes make the provider replace a resource instead of updating it.

pulumi-openstack 5.5.3 bridges terraform-provider-openstack v3.4.0 (``provider/go.mod`` of
pulumi/pulumi-openstack from v5.5.0 on); the bridge plans a replacement when an input whose
Terraform schema says ``ForceNew: true`` changes. The sets below are those schema entries,
under the provider's Pulumi names, read from terraform-provider-openstack at tag v3.4.0:

- Network: ``openstack/resource_openstack_networking_network_v2.go``
- Subnet: ``openstack/resource_openstack_networking_subnet_v2.go``
- RouterInterface: ``openstack/resource_openstack_networking_router_interface_v2.go``
- Port: ``openstack/resource_openstack_networking_port_v2.go``
- SecGroup: ``openstack/resource_openstack_networking_secgroup_v2.go``
- SecGroupRule: ``openstack/resource_openstack_networking_secgroup_rule_v2.go`` (no Update
  function at all: a rule is never changed in place)

and for the types that stay simulated (Nova, Cinder):

- Instance: ``openstack/resource_openstack_compute_instance_v2.go`` (its ``network`` block is
  ForceNew; a flavor change resizes in place)
- Keypair: ``openstack/resource_openstack_compute_keypair_v2.go`` (no Update function)
- VolumeAttach: ``openstack/resource_openstack_compute_volume_attach_v2.go`` (no Update)
- Volume: ``openstack/resource_openstack_blockstorage_volume_v3.go`` (a size change extends)

and the instance's host key, from terraform-provider-tls (which pulumi-tls 5.6.2 bridges):
``internal/provider/resource_private_key.go``, where every input (algorithm, rsa_bits,
ecdsa_curve) has a RequiresReplace plan modifier.

Nested ForceNew entries inside a block that is not itself ForceNew (the instance's
``block_device.*``, ``scheduler_hints.*``) are left out: the program declares neither.
pulumi-command has no such table: a change to ``triggers`` replaces (its SDK registers
``replace_on_changes=["triggers[*]"]``, honoured by the engine like any replaceOnChanges),
and any other change replaces a command that has no ``update`` (the SDK's docstring).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi_openstack as openstack
import pulumi_tls as tls

from .mapping import NETWORK, PORT, ROUTER_INTERFACE, SEC_GROUP, SEC_GROUP_RULE, SUBNET

INSTANCE = "openstack:compute/instance:Instance"
KEYPAIR = "openstack:compute/keypair:Keypair"
VOLUME_ATTACH = "openstack:compute/volumeAttach:VolumeAttach"
VOLUME = "openstack:blockstorage/volume:Volume"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"

# Terraform name -> Pulumi name where the bridge renames: allocation_pool -> allocationPools,
# fixed_ip -> fixedIps, network -> networks (the others are plain camelCase).
FORCE_NEW: Mapping[str, frozenset[str]] = {
    NETWORK: frozenset(
        {"region", "tenantId", "valueSpecs", "availabilityZoneHints", "transparentVlan"}
    ),
    SUBNET: frozenset(
        {
            "region",
            "networkId",
            "cidr",
            "prefixLength",
            "tenantId",
            "ipVersion",
            "ipv6AddressMode",
            "ipv6RaMode",
            "subnetpoolId",
            "valueSpecs",
        }
    ),
    ROUTER_INTERFACE: frozenset({"region", "routerId", "subnetId", "portId"}),
    PORT: frozenset(
        {
            "region",
            "networkId",
            "macAddress",
            "tenantId",
            "deviceOwner",
            "deviceId",
            "valueSpecs",
        }
    ),
    SEC_GROUP: frozenset({"region", "tenantId", "deleteDefaultRules"}),
    SEC_GROUP_RULE: frozenset(
        {
            "region",
            "description",
            "direction",
            "ethertype",
            "portRangeMin",
            "portRangeMax",
            "protocol",
            "remoteGroupId",
            "remoteIpPrefix",
            "remoteAddressGroupId",
            "securityGroupId",
            "tenantId",
        }
    ),
    INSTANCE: frozenset(
        {
            "region",
            "userData",
            "availabilityZoneHints",
            "availabilityZone",
            "networkMode",
            "networks",
            "hypervisorHostname",
            "configDrive",
            "keyPair",
        }
    ),
    KEYPAIR: frozenset({"region", "name", "publicKey", "valueSpecs", "userId"}),
    VOLUME_ATTACH: frozenset(
        {"region", "instanceId", "volumeId", "multiattach", "tag", "vendorOptions"}
    ),
    VOLUME: frozenset(
        {
            "region",
            "availabilityZone",
            "snapshotId",
            "sourceVolId",
            "imageId",
            "backupId",
            "consistencyGroupId",
            "sourceReplica",
        }
    ),
    PRIVATE_KEY: frozenset({"algorithm", "rsaBits", "ecdsaCurve"}),
}

# The SDK's Args class of each type: every name above must be one of its inputs.
ARGS: Mapping[str, type] = {
    NETWORK: openstack.networking.NetworkArgs,
    SUBNET: openstack.networking.SubnetArgs,
    ROUTER_INTERFACE: openstack.networking.RouterInterfaceArgs,
    PORT: openstack.networking.PortArgs,
    SEC_GROUP: openstack.networking.SecGroupArgs,
    SEC_GROUP_RULE: openstack.networking.SecGroupRuleArgs,
    INSTANCE: openstack.compute.InstanceArgs,
    KEYPAIR: openstack.compute.KeypairArgs,
    VOLUME_ATTACH: openstack.compute.VolumeAttachArgs,
    VOLUME: openstack.blockstorage.VolumeArgs,
    PRIVATE_KEY: tls.PrivateKeyArgs,
}

COMMANDS = frozenset({"command:local:Command", "command:remote:Command"})


def replaces(
    type_: str,
    changed: set[str],
    new_inputs: Mapping[str, object],
    replace_on_changes: list[str],
) -> bool:
    """Whether a change of `changed` inputs replaces the resource (else: update in place)."""
    if type_ in COMMANDS and "update" not in new_inputs:
        return True
    roots = {path.split("[")[0].split(".")[0] for path in replace_on_changes}
    if "*" in roots or changed & roots:
        return True
    return bool(changed & FORCE_NEW.get(type_, frozenset()))
