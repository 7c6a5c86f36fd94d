"""The latency of each OpenStack (and guest) operation the models use, with where it comes from.

There is no OpenStack here, so every figure is either a published measurement, a number read
from the code that does the waiting (Manila, the terraform provider under pulumi-openstack,
pulumi-command), or an estimate; ``estimate=True`` says which. The modelled *ratios* are much
less sensitive to these figures than the absolute seconds: the same figure is used for the
same operation in all three models (ours, Manila's, the physical limit), and the benchmark
also reports the ratios under ±20 % random variation of every figure.

Sources cited below:

* ``rally-gist``: a Rally run printed in https://gist.github.com/anonymous/17e39b4ef710256fe8b2
  (one sample each: nova.boot_server 8.431 s, neutron.create_subnet 0.054 s,
  neutron.add_interface_router 0.084 s, nova.delete_server 2.37 s).
* ``perf-docs-boot``: OpenStack performance-docs, "Boot and delete VM with reboot of one of
  controllers" (Fuel CCP; NovaServers.boot_and_delete_server, m1.tiny cirros), baseline
  median 8.6 s, mean 8.8 s for boot *and* delete.
  https://docs.openstack.org/developer/performance-docs/test_results/reliability/fuel_ccp/reports/nova/boot_and_delete_with_reboot_one_node_with_rabbitmq_service/index.html
* ``perf-docs-ports``: performance-docs, "Ports operations and OVS agent restart"
  (NeutronNetworks.create_and_delete_ports, 10 ports per network, concurrency 4): baseline
  median 8.7 s per iteration, i.e. about 0.4 s per port create or delete.
  https://docs.openstack.org/performance-docs/latest/test_results/neutron_features/agent_restart/create_and_delete_ports_with_restart_neutron_openvswitch_agent_service/index.html
* ``bluebox``: IBM Blue Box, "What happens behind the scenes when I boot a virtual machine":
  "a typical 7-second build" (cached 618 MB image).
  http://ibm-blue-box-help.github.io/help-documentation/nova/Nova_boot_speed/
* ``nova-lock``: openstack/nova nova/compute/manager.py (commit 00a030403f, 2026-08-21):
  ``reserve_block_device_name`` (l. 8151) and ``attach_volume`` (l. 8189) both run under
  ``@utils.synchronized(instance.uuid)``: attaches to one server are serialised in
  nova-compute whoever asks; nova/compute/api.py (l. 5199-5204) accepts an attach only once
  the server is ACTIVE (or paused, stopped, ...), so attaches follow the boot.
* ``manila-ref``: docs/manila.md §5-§6, i.e. Manila 22.0.0
  manila/share/drivers/service_instance.py:483-507, 612-783 (setup order), 833-865 (1 s
  ACTIVE poll), 793-822 (5 s SSH-login poll); manila/share/drivers/generic.py:228-250
  (create order), 150-178 (one SSH command per step).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    seconds: float
    what: str
    source: str
    estimate: bool


def estimate(seconds: float, what: str, source: str = "estimate") -> Figure:
    return Figure(seconds, what, source, estimate=True)


def published(seconds: float, what: str, source: str) -> Figure:
    return Figure(seconds, what, source, estimate=False)


FIGURES: dict[str, Figure] = {
    # Neutron
    "neutron_get": estimate(0.1, "one Neutron/Nova/Cinder GET or list"),
    "subnet_create": estimate(
        0.5,
        "Neutron subnet create (IPAM, DHCP port notified)",
        "rally-gist 0.054 s on an idle lab; 0.5 s allows for a loaded control plane",
    ),
    "port_create": published(
        0.5, "Neutron port create (or update)", "perf-docs-ports: ~0.4 s per port op"
    ),
    "router_interface_add": estimate(
        1.0,
        "Neutron add_router_interface",
        "rally-gist 0.084 s API call; 1.0 s allows for the L3 agent's port binding",
    ),
    "sg_create": estimate(0.3, "Neutron security group create"),
    "sg_rule_create": estimate(0.2, "Neutron security group rule create"),
    # Nova
    "keypair_import": estimate(0.3, "Nova keypair import"),
    "image_list": estimate(0.2, "Glance image list by name (Manila)"),
    "server_api": estimate(1.0, "POST /servers until it returns (part of the build)"),
    "server_build": published(
        10.0,
        "POST /servers until ACTIVE (cached image)",
        "rally-gist nova.boot_server 8.4 s; bluebox 'typical 7-second build'; "
        "perf-docs-boot 8.6 s median for boot+delete",
    ),
    "server_read": estimate(0.5, "provider's read-back of a server (server, its ports)"),
    "guest_boot": estimate(
        25.0,
        "ACTIVE until sshd accepts the key (Ubuntu-based manila-service-image, KVM)",
        "estimate; Manila allows 300 s (max_time_to_build_instance); table 4's TCG guest "
        "is far slower and is not used here",
    ),
    "sg_add_to_server": estimate(0.5, "Nova add security group to a server (Manila)"),
    # Cinder and attach
    "volume_api": estimate(0.3, "POST /volumes until it returns"),
    "volume_create": estimate(3.0, "empty volume create until available (LVM)"),
    "attach_reserve": estimate(
        0.5,
        "attach request: nova-api's RPC call reserve_block_device_name (under the instance lock)",
        "nova-lock; duration estimate",
    ),
    "attach_work": estimate(
        4.0,
        "nova-compute attach under the instance lock: Cinder attachment update (target "
        "export), os-brick connect, libvirt attach, attachment complete",
        "nova-lock; duration estimate",
    ),
    # Host and guest
    "local_plug": estimate(0.3, "host port plug (ovs-vsctl add-port, ip link/addr), local"),
    "host_key_generate": estimate(0.01, "ed25519 host key made by the tls provider, locally"),
    "ssh_connect": estimate(0.3, "SSH connect + key exchange + public-key login"),
    "ssh_exec": estimate(0.1, "one sudo command on an open SSH connection (Manila: one per step)"),
    "mkfs": estimate(1.0, "mkfs.ext4 on an empty 10 GiB volume (lazy init)"),
    "mount_persist": estimate(0.3, "mount + fstab line"),
    "export": estimate(0.2, "exportfs for the share's clients"),
    "script_overhead": estimate(0.3, "share.sh's own checks: device by serial, blkid, flock"),
    "manila_remount": estimate(
        0.6,
        "Manila's extra mount cycle: chmod, umount, e2fsck -y -f, tune2fs -U random, mount",
        "manila-ref _mount_device; duration estimate",
    ),
    # Pulumi
    "engine_step": estimate(
        0.05, "Pulumi engine + provider gRPC + state checkpoint per resource operation"
    ),
}

# Manila's waits (manila-ref): volume/attach/ACTIVE polls every 1 s, SSH login every 5 s.
MANILA_POLL_SECONDS = 1.0
MANILA_SSH_POLL_SECONDS = 5.0
# Manila runs one SSH command per step; the counts below are manila-ref's create path.
MANILA_SSH_COMMANDS_FORMAT = 3  # test -b, mkfs, tune2fs -m 0
MANILA_SSH_COMMANDS_MOUNT = 6  # mount (list), the compound mount, grep|tee, lsblk, sed, mount -a
MANILA_SSH_COMMANDS_ACCESS = 5  # exportfs, exportfs -o, cp etab, exportfs -a, systemctl is-active
MANILA_SECURITY_GROUP_RULES = 9  # setup_server's new group
MANILA_INIT_HELPER_COMMANDS = 2  # exportfs, net conf list

JITTER = 0.2
"""Each figure varies uniformly within ±20 % in the jittered samples."""


class Latencies:
    """The figures, exactly (sample=None) or drawn for one jittered sample.

    A draw depends only on (sample, figure, key), so the three models see the same cloud:
    volume ``s03`` takes the same time in ours, in Manila's and in the physical limit.
    """

    def __init__(self, sample: int | None = None) -> None:
        self.sample = sample

    def __call__(self, name: str, key: str = "") -> float:
        base = FIGURES[name].seconds
        if self.sample is None:
            return base
        factor = random.Random(f"{self.sample}|{name}|{key}").uniform(1 - JITTER, 1 + JITTER)
        return base * factor

    def guest_work(self, key: str) -> float:
        """Filesystem work for one new share on the guest (the same for every design)."""
        return self("mkfs", key) + self("mount_persist", key) + self("export", key)
