"""A stand-in for the Pulumi CLI executable, for driving the Automation API in tests.

``install(root, settings)`` makes ``<root>/bin/pulumi``; pass ``PulumiCommand(root=...)`` (or
the fleet's ``--pulumi-root``). Light commands import only the standard library and PyYAML;
``preview`` and ``up`` also host a resource monitor and run the inline program for real.
"""
