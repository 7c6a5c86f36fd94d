"""The fleet: the share-server program rolled out as one Pulumi stack per tenant.

``tenants`` reads the tenants file, ``allocation``/``ledger`` decide the service subnets,
``plan`` builds each stack's config, ``runner`` drives the Automation API, ``report`` shows
progress and the final table, ``cli`` is the command line.
"""
