"""The fleet: the share-server program rolled out as one Pulumi stack per tenant.

``tenants`` reads the tenants file, ``survey`` reads what each shared service network holds
from the cloud, ``allocation``/``ledger`` decide the service subnets, ``stack_config`` builds
each stack's config, ``runner`` drives the Automation API, ``operations`` runs one tenant's
operation (``rebuild`` of a lost service instance among them), ``verify`` checks inside the
service instances over ``openssh``, ``report`` shows progress and the final table, ``cli`` is
the command line.
"""
