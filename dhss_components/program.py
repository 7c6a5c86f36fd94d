"""The Pulumi program: config → discovery → ShareServer → stack outputs.

``__main__.py`` runs it for ``pulumi up``; the fleet runs the very same function as an
Automation API inline program, one stack per tenant.
"""

from __future__ import annotations

import pulumi
import pulumi_command as command

from .blueprint import share_server_blueprint
from .config import NAMESPACE, InvalidStackConfig, StackSpec, parse_stack_config
from .discovery import discover
from .server import ShareServer, ShareServerArgs


def load_stack_spec() -> StackSpec:
    """Read and validate ``dhss:*``; every problem at once, as a RunError (no traceback)."""
    config = pulumi.Config(NAMESPACE)
    try:
        return parse_stack_config(
            config.get_object("backend"),
            config.get_object("shareNetwork"),
            config.get_object("shares"),
        )
    except InvalidStackConfig as exc:
        raise pulumi.RunError(str(exc)) from None


def _ssh_proxy(spec: StackSpec) -> command.remote.ProxyConnectionArgs | None:
    proxy = spec.backend.ssh_proxy
    if proxy is None:
        return None
    return command.remote.ProxyConnectionArgs(
        host=proxy.host,
        user=proxy.user,
        port=proxy.port,
        private_key=(
            pulumi.Output.secret(spec.proxy_private_key) if spec.proxy_private_key else None
        ),
    )


def share_server_args(spec: StackSpec) -> ShareServerArgs:
    facts = discover(spec)
    backend = spec.backend
    blueprint = share_server_blueprint(
        spec, facts, project=pulumi.get_project(), stack=pulumi.get_stack()
    )
    return ShareServerArgs(
        blueprint=blueprint,
        image_id=facts.image_id,
        flavor_id=backend.service_instance_flavor_id,
        neutron_net_id=spec.share_network.neutron_net_id,
        neutron_subnet_id=spec.share_network.neutron_subnet_id,
        service_network_id=backend.service_network_id,
        service_network_name=backend.service_network_name,
        service_instance_user=backend.service_instance_user,
        public_key=spec.public_key,
        private_key=pulumi.Output.secret(spec.private_key) if spec.private_key else None,
        password=(
            pulumi.Output.secret(backend.service_instance_password)
            if backend.service_instance_password
            else None
        ),
        share_mount_path=backend.share_mount_path,
        share_volume_fstype=backend.share_volume_fstype,
        cinder_volume_type=backend.cinder_volume_type,
        protect_volumes=backend.protect_volumes,
        max_time_to_build_instance=backend.max_time_to_build_instance,
        max_time_to_attach=backend.max_time_to_attach,
        service_network_host=backend.service_network_host,
        ovs_integration_bridge=backend.ovs_integration_bridge,
        ssh_proxy=_ssh_proxy(spec),
        admin_network_id=backend.admin_network_id,
        admin_subnet_id=backend.admin_subnet_id,
        admin_subnet_cidr=facts.admin_subnet_cidr,
    )


def share_server_program() -> ShareServer:
    """Everything one stack declares; the builder both `pulumi up` and the fleet run."""
    server = ShareServer("share-server", share_server_args(load_stack_spec()))
    pulumi.export("share_server", server.share_server)
    pulumi.export("shares", server.shares)
    return server
