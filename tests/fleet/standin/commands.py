"""The commands the stand-in answers, with exactly the flags the real CLI takes for each.

Sources (the CLI's own definitions, not a guess):

- ``refresh``, ``config``, ``config set-all``, ``config rm-all``, ``config rm``, ``state
  unprotect``, ``state remove``, ``version`` and the root's persistent flags: the Automation
  API's generated CLI interface in the pinned SDK, ``pulumi/automation/interface/__init__.py``
  of pulumi 3.272.0 (generated from the CLI's command specification of the same release; one
  method per command, ``__flags.append`` for a boolean flag, ``__flags.extend([flag, value])``
  for one taking a value). ``tests/fleet/test_standin.py`` reads that file and fails if this
  table drifts from it. It leaves out ``--event-log``, which the SDK itself sends to
  ``refresh`` and which ``pkg/cmd/pulumi/operations/refresh.go`` (v3.259.0) defines; the table
  has it.
- ``up``, ``preview``, ``destroy``, ``stack select|init|ls|output|history|export``: the CLI's
  cobra definitions in pulumi/pulumi at tag v3.259.0 (``pkg/cmd/pulumi/operations/{up,preview,
  destroy}.go``, ``pkg/backend/display/deployment/remote.go`` ``RemoteArgs.ApplyFlags``,
  ``pkg/cmd/pulumi/stack/stack_{select,new,list,output,history,export}.go``), the newest CLI
  source at hand; the generated interface has no method for these.
- Parsing and errors are pflag's and cobra's as the CLI uses them (``SilenceErrors``; the CLI
  prints ``error: <message>`` and exits with ``cmd.ExitCodeFor``, ``pkg/cmd/pulumi/cmd/
  exit_codes.go``): ``unknown flag: --x``, ``unknown shorthand flag: 'x' in -x``, ``flag needs
  an argument: --x``, ``unknown command "x" for "pulumi stack"``; a boolean flag takes a value
  only as ``--flag=value``, so ``--run-program true`` is ``--run-program`` and a positional
  ``true``.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_ERROR = 1
"""ExitCodeError: a generic failure (a failed update, an unknown flag)."""
EXIT_CONFIGURATION = 2
"""ExitConfigurationError: e.g. no --yes in non-interactive mode."""
EXIT_STACK_NOT_FOUND = 6


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    bools: frozenset[str]
    values: frozenset[str]
    max_args: int | None
    """Positional arguments allowed (None: any number)."""
    min_args: int = 0


def _flags(text: str) -> frozenset[str]:
    return frozenset(f"--{name}" for name in text.split())


# pulumi's root command (pkg/cmd/pulumi/pulumi.go; the interface's common parameters).
GLOBAL_BOOLS = _flags(
    "non-interactive disable-integrity-checking emoji fully-qualify-stack-names logflow "
    "logtostderr help"
)
GLOBAL_VALUES = _flags(
    "color cwd memprofilerate otel-traces profiling tracing tracing-header verbose"
)
SHORTHANDS = {
    "-C": "--cwd", "-e": "--emoji", "-Q": "--fully-qualify-stack-names", "-h": "--help",
    "-v": "--verbose", "-s": "--stack", "-y": "--yes", "-f": "--skip-preview", "-j": "--json",
    "-m": "--message", "-p": "--parallel", "-c": "--config", "-t": "--target", "-r": "--refresh",
    "-d": "--debug", "-a": "--all",
}  # fmt: skip

# RemoteArgs.ApplyFlags: up, preview, refresh and destroy all take these.
_REMOTE_BOOLS = (
    "remote remote-inherit-settings remote-skip-install-dependencies suppress-stream-logs"
)
_REMOTE_VALUES = (
    "remote-agent-pool-id remote-env remote-env-secret remote-executor-image "
    "remote-executor-image-password remote-executor-image-username remote-git-auth-access-token "
    "remote-git-auth-password remote-git-auth-ssh-private-key "
    "remote-git-auth-ssh-private-key-path remote-git-auth-username remote-git-branch "
    "remote-git-commit remote-git-repo-dir remote-pre-run-command"
)
_OPERATION_BOOLS = (
    "config-path copilot debug diff json neo run-program show-config show-full-output "
    "show-replacement-steps show-sames skip-config-validation skip-plugin-pre-install "
    "suppress-outputs suppress-progress target-dependents urns ignore-protect " + _REMOTE_BOOLS
)
_OPERATION_VALUES = (
    "client config config-file event-log exec-agent exec-kind message parallel refresh "
    "suppress-permalink " + _REMOTE_VALUES
)

COMMANDS: dict[tuple[str, ...], Command] = {
    command.path: command
    for command in (
        Command(("version",), frozenset(), frozenset(), max_args=0),
        Command(("whoami",), _flags("json"), frozenset(), max_args=0),
        Command(
            ("up",),
            _flags(
                _OPERATION_BOOLS + " continue-on-error exclude-dependents expect-no-changes "
                "neo-task-on-failure show-policy-remediations show-reads show-secrets skip-preview "
                "strict yes"
            ),
            _flags(
                _OPERATION_VALUES + " attach-debugger exclude output plan policy-pack "
                "policy-pack-config replace secrets-provider stack target target-replace"
            ),
            max_args=1,  # [template|url]
        ),
        Command(
            ("preview",),
            _flags(
                _OPERATION_BOOLS + " exclude-dependents expect-no-changes neo-task-on-failure "
                "show-policy-remediations show-reads show-secrets"
            ),
            _flags(
                _OPERATION_VALUES + " attach-debugger exclude import-file output policy-pack "
                "policy-pack-config replace save-plan stack target target-replace"
            ),
            max_args=1,
        ),
        Command(
            ("refresh",),
            _flags(
                "clear-pending-creates config-path copilot debug diff exclude-dependents "
                "expect-no-changes json neo preview-only run-program show-replacement-steps "
                "show-sames skip-config-validation skip-pending-creates skip-plugin-pre-install "
                "skip-preview suppress-outputs suppress-progress target-dependents urns yes"
            ),
            _flags(
                "client config config-file event-log exclude exec-agent exec-kind "
                "import-pending-creates message output override-env parallel stack "
                "suppress-permalink target"
            ),
            max_args=0,
        ),
        Command(
            ("destroy",),
            _flags(
                _OPERATION_BOOLS + " continue-on-error exclude-protected preview-only remove "
                "skip-preview yes"
            ),
            _flags(_OPERATION_VALUES + " exclude output stack target"),
            max_args=0,
        ),
        Command(("stack", "select"), _flags("create"), _flags("secrets-provider stack"), 1),
        Command(
            ("stack", "init"),
            _flags("no-select remote-config yes"),
            _flags("copy-config-from secrets-provider stack teams"),
            max_args=1,
        ),
        Command(("stack", "ls"), _flags("all json"), _flags("organization project tag"), 0),
        Command(
            ("stack", "output"), _flags("json shell show-secrets"), _flags("stack"), max_args=1
        ),
        Command(
            ("stack", "history"),
            _flags("full-dates json show-secrets"),
            _flags("page page-size stack"),
            max_args=0,
        ),
        Command(("stack", "export"), _flags("show-secrets"), _flags("file stack version"), 0),
        Command(("config",), _flags("json open show-secrets"), _flags("config-file stack"), 0),
        Command(
            ("config", "set-all"),
            _flags("open path show-secrets"),
            _flags("config-file json plaintext secret stack"),
            max_args=0,
        ),
        Command(
            ("config", "rm-all"),
            _flags("json open path show-secrets"),
            _flags("config-file stack"),
            max_args=None,
            min_args=1,
        ),
        Command(
            ("config", "rm"),
            _flags("json open path show-secrets"),
            _flags("config-file stack"),
            max_args=1,
            min_args=1,
        ),
        Command(("state", "unprotect"), _flags("all yes"), _flags("stack"), max_args=None),
        Command(
            ("state", "remove"),
            _flags("all force target-dependents yes"),
            _flags("stack"),
            max_args=None,
        ),
    )
}
ALIASES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("config", "remove-all"): ("config", "rm-all"),
    ("config", "remove"): ("config", "rm"),
    ("stack", "new"): ("stack", "init"),
    ("stack", "list"): ("stack", "ls"),
    ("state", "delete"): ("state", "remove"),
}
GROUPS: set[tuple[str, ...]] = {("stack",), ("state",)}
"""Commands that only hold subcommands (``pulumi stack`` alone shows the current stack, which
the stand-in does not answer)."""
