"""ShareServer: the stack's root component. Wires network → connectivity → instance → shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_command as command

from .blueprint import ShareServerBlueprint, SshBlueprint
from .connectivity import HostConnectivity, HostConnectivityArgs
from .instance import ServiceInstance, ServiceInstanceArgs
from .network import ServiceNetwork, place
from .share import Share, ShareArgs
from .ssh_ready_script import render_ssh_ready_command


@dataclass(frozen=True)
class SshCredentials:
    """The share commands' secrets; kept apart from the blueprint, which is shown in plans."""

    private_key: pulumi.Input[str] | None = field(default=None, repr=False)
    password: pulumi.Input[str] | None = field(default=None, repr=False)
    proxy_private_key: pulumi.Input[str] | None = field(default=None, repr=False)


@dataclass
class ShareServerArgs:
    blueprint: ShareServerBlueprint
    credentials: SshCredentials


def _pinned(host_key: str, generated: pulumi.Output[str] | None) -> pulumi.Input[str] | None:
    if host_key == "generated":
        assert generated is not None
        return generated
    return None if host_key == "unverified" else host_key


def _connection(
    ssh: SshBlueprint,
    host: pulumi.Input[str],
    generated_host_key: pulumi.Output[str] | None,
    credentials: SshCredentials,
) -> command.remote.ConnectionArgs:
    proxy = None
    if ssh.proxy is not None:
        proxy = command.remote.ProxyConnectionArgs(
            host=ssh.proxy.host,
            user=ssh.proxy.user,
            port=ssh.proxy.port,
            private_key=credentials.proxy_private_key,
            host_key=_pinned(ssh.proxy.host_key, None),
        )
    return command.remote.ConnectionArgs(
        host=host,
        user=ssh.user,
        private_key=credentials.private_key,
        password=credentials.password,
        dial_error_limit=ssh.dial_error_limit,
        host_key=_pinned(ssh.host_key, generated_host_key),
        proxy=proxy,
    )


class ShareServer(pulumi.ComponentResource):
    share_server: pulumi.Output[dict[str, Any]]
    """The share server as Manila's backend_details would describe it."""
    shares: pulumi.Output[dict[str, Any]]
    """Per share: id, volume id, protocol, size and export locations."""

    def __init__(
        self, name: str, args: ShareServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("manila-dhss:index:ShareServer", name, None, opts)
        blueprint = args.blueprint
        child = pulumi.ResourceOptions(parent=self)

        network = (
            ServiceNetwork(f"{name}-network", blueprint.network, child)
            if blueprint.network
            else None
        )
        instance = ServiceInstance(
            f"{name}-instance",
            ServiceInstanceArgs(
                blueprint.instance, [place(nic, network) for nic in blueprint.instance.nics]
            ),
            child,
        )
        # Declared after the instance: when the service subnet exists, its service port is the
        # first registration Pulumi's engine sees (first come, first served), ahead of the host
        # port that nothing on the way to the server waits for. The server boots while the host
        # is plugged: only the commands need both.
        connectivity = None
        if blueprint.host is not None:
            connectivity = HostConnectivity(
                f"{name}-host",
                HostConnectivityArgs(
                    blueprint.host, [place(port.nic, network) for port in blueprint.host.ports]
                ),
                child,
            )

        ssh_host = instance.addresses[blueprint.ssh.role]
        host_key = _pinned(blueprint.ssh.host_key, instance.host_key)
        connection = _connection(blueprint.ssh, ssh_host, instance.host_key, args.credentials)
        reachable: list[pulumi.Resource] = [instance, *([connectivity] if connectivity else [])]
        if blueprint.ssh.wait_until_ready:
            reachable.append(
                self._ssh_ready(
                    name,
                    ssh=blueprint.ssh,
                    host=ssh_host,
                    host_key=host_key,
                    instance=instance,
                    needs=reachable,
                )
            )
        components = {
            share.name: Share(
                f"{name}-share-{share.name}",
                ShareArgs(
                    blueprint=share,
                    server_id=instance.server_id,
                    connection=connection,
                    command_timeout=blueprint.ssh.command_timeout,
                    public_address=instance.addresses[blueprint.public_role],
                    admin_address=instance.addresses[blueprint.admin_export_role],
                    reachable_through=reachable,
                ),
                child,
            )
            for share in blueprint.shares
        }

        addresses = instance.addresses
        self.share_server = pulumi.Output.all(
            instance_id=instance.server_id,
            service_ip=addresses.get("service"),
            admin_ip=addresses.get("admin"),
            tenant_ip=addresses.get("tenant"),
            public_address=addresses[blueprint.public_role],
            ssh_address=ssh_host,
            service_subnet_id=network.subnet_id if network else None,
            security_group_id=instance.security_group_id,
            host_key=host_key,
        ).apply(
            lambda values: {
                "share_server_id": blueprint.share_server_id,
                "network_mode": blueprint.mode.name,
                "service_subnet_cidr": str(blueprint.network.subnet_cidr)
                if blueprint.network
                else None,
                "router_id": blueprint.network.router_id if blueprint.network else None,
                "host_key_check": blueprint.ssh.host_key != "unverified",
                **values,
            }
        )
        names = [share.name for share in blueprint.shares]
        # (Output.all of no keyword arguments is a list: zip keeps "no shares" a mapping.)
        self.shares = pulumi.Output.all(
            *[
                pulumi.Output.all(
                    share_id=share.share_id,
                    share_proto=share.protocol,
                    size=share.size,
                    volume_id=components[share.name].volume_id,
                    export_locations=components[share.name].export_locations,
                )
                for share in blueprint.shares
            ]
        ).apply(lambda values: dict(zip(names, values, strict=True)))
        self.register_outputs({"share_server": self.share_server, "shares": self.shares})

    def _ssh_ready(
        self,
        name: str,
        *,
        ssh: SshBlueprint,
        host: pulumi.Output[str],
        host_key: pulumi.Input[str] | None,
        instance: ServiceInstance,
        needs: list[pulumi.Resource],
    ) -> command.local.Command:
        # pulumi-command redials a booting instance at pauses growing to 5 s, so the first
        # command notices sshd late; this polls every half second and checks the host key, so
        # the commands get in at their first dial and a wrong machine is refused at once.
        return command.local.Command(
            f"{name}-ssh-ready",
            create=pulumi.Output.all(host, host_key).apply(
                lambda values: render_ssh_ready_command(values[0], ssh.boot_seconds, values[1])
            ),
            # Once per server: a new one (a rebuild) is waited for again.
            triggers=[instance.server_id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(needs)),
        )
