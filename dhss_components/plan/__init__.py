"""The offline plan: what a stack would declare, with no cloud, no credentials, no CLI.

``stack_file`` reads ``Pulumi.<stack>.yaml``; ``stand_ins`` replaces what this machine cannot
have and builds a simulated cloud holding what the config names; ``build`` runs the real
program against it and turns what it declared into a ``model.Plan``; ``render`` prints that
as Markdown or JSON; ``__main__`` is the command line.
"""
