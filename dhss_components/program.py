"""The Pulumi program: config → discovery → blueprint → ShareServer → stack outputs.

``__main__.py`` runs it for ``pulumi up``; the fleet runs the very same function as an
Automation API inline program, one stack per tenant.
"""

from __future__ import annotations

import pulumi

from .blueprint import share_server_blueprint
from .config import NAMESPACE, InvalidStackConfig, StackSpec, parse_stack_config
from .discovery import discover
from .server import ShareServer, ShareServerArgs, SshCredentials


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


def _secret(value: str | None) -> pulumi.Output[str] | None:
    return pulumi.Output.secret(value) if value else None


def share_server_program() -> ShareServer:
    """Everything one stack declares; the builder both `pulumi up` and the fleet run."""
    spec = load_stack_spec()
    blueprint = share_server_blueprint(
        spec, discover(spec), project=pulumi.get_project(), stack=pulumi.get_stack()
    )
    server = ShareServer(
        "share-server",
        ShareServerArgs(
            blueprint,
            SshCredentials(
                private_key=_secret(spec.private_key),
                password=_secret(spec.backend.service_instance_password),
                proxy_private_key=_secret(spec.proxy_private_key),
            ),
        ),
    )
    pulumi.export("share_server", server.share_server)
    pulumi.export("shares", server.shares)
    return server
