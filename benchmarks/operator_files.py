"""Hostile-by-accident operator files against the three command lines: time, peak memory and
what lands on stderr. ``python -m benchmarks.operator_files [--repo DIR]``.

``--repo`` runs another checkout's code with this one's inputs (e.g. an older commit,
extracted with ``git archive COMMIT | tar -x -C DIR``), to compare before and after. Each run
is a subprocess capped at 6 GiB of address space and 300 s, so a reader that expands an alias
bomb ends in MemoryError (or the timeout) instead of taking the machine with it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.tables import table, title

MEMORY_CAP = 6 << 30
TIME_CAP = 300

LAUGHS = "lol:\n" + "\n".join(
    ["  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [
        f"  {level}: &{level} [" + ", ".join([f"*{previous}"] * 9) + "]"
        for previous, level in itertools.pairwise("abcdefghi")
    ]
)
"""Nine levels of nine aliases: 9^9 = 387,420,489 strings once expanded."""


def padded(text: str, size: int = 846) -> bytes:
    data = text.encode()
    return data + b"#" * (size - len(data) - 1) + b"\n"


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    data: bytes
    command: str
    """plan, fleet or importer"""


CASES = [
    Case(
        "alias bomb where a boolean belongs (846 B)",
        "Pulumi.bomb.yaml",
        padded(LAUGHS + "\nconfig:\n  dhss:backend:\n    driver_handles_share_servers: *i\n"),
        "plan",
    ),
    Case(
        "alias bomb where a boolean belongs (846 B)",
        "tenants.yaml",
        padded(LAUGHS + "\nbackend:\n  driver_handles_share_servers: *i\ntenants: {}\n"),
        "fleet",
    ),
    Case("100,000 nested lists", "Pulumi.bomb.yaml", b"config: " + b"[" * 100_000, "plan"),
    Case("100,000 nested lists", "tenants.yaml", b"tenants: " + b"[" * 100_000, "fleet"),
    Case(
        "a list as a key (`? [a, b]`)", "tenants.yaml", b"tenants:\n  ? [a, b]\n  : {}\n", "fleet"
    ),
    Case("not UTF-8", "Pulumi.bomb.yaml", b"config:\n  dhss:backend: {x: caf\xe9}\n", "plan"),
    Case("/dev/zero as manila.conf", "/dev/zero", b"", "importer"),
]


def _tenants(count: int) -> bytes:
    """A tenants file of ``count`` tenants, one NFS share each, in the example's shape."""
    lines = ["backend: {driver_handles_share_servers: true, service_instance_user: manila}"]
    lines.append("tenants:")
    for index in range(count):
        lines += [
            f"  tenant-{index:04d}:",
            "    shareNetwork:",
            f"      neutron_net_id: 9ab1d3f4-2c1e-4f53-9d53-{index:012d}",
            f"      neutron_subnet_id: 5f0c7e2a-8d3b-4b6e-a1f4-{index:012d}",
            "    shares:",
            "      - name: projects",
            "        size: 10",
            "        share_proto: NFS",
            "        access_rules:",
            "          - {access_type: ip, access_to: 10.0.0.0/26, access_level: rw}",
        ]
    return ("\n".join(lines) + "\n").encode()


READER_CASES = [
    Case("2,000 tenants", "tenants.yaml", _tenants(2000), "reader"),
    Case("199,990 values, one flow list", "values.yaml", b"[" + b"a," * 199_989 + b"a]", "reader"),
    Case("a 1 MiB comment", "comment.yaml", b"#" * ((1 << 20) - 1) + b"\n", "reader"),
]
"""What the limits let through, read alone (``operator_files.load_yaml``)."""


def command(case: Case, repo: Path, directory: Path) -> list[str]:
    path = case.file if case.file.startswith("/") else str(directory / case.file)
    python = [sys.executable, "-m"]
    if case.command == "plan":
        return [*python, "dhss_components.plan", "--stack", "bomb", "--cwd", str(directory)]
    if case.command == "fleet":
        return [*python, "dhss_components.fleet", "preview", path, "--work-root", str(directory)]
    if case.command == "reader":
        script = "import sys\nfrom dhss_components.operator_files import load_yaml\n"
        script += "load_yaml(sys.argv[1])"
        return [sys.executable, "-c", script, path]
    # The importer had no entry point of its own before it moved out of config.py.
    own = "__main__" in (repo / "dhss_components" / "manila_conf.py").read_text()
    entry = (
        ["dhss_components.manila_conf"] if own else ["dhss_components.config", "from-manila-conf"]
    )
    return [*python, *entry, path, "--backend", "generic1"]


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _wait(process: subprocess.Popen[bytes], started: float) -> tuple[int | str, int]:
    """Exit status (or "killed") and peak RSS in KiB of this one child (wait4's rusage)."""
    status, usage = 0, None
    while usage is None:
        pid, status, rusage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            usage = rusage
        elif time.monotonic() - started > TIME_CAP:
            process.kill()
        else:
            time.sleep(0.05)
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    return ("killed" if time.monotonic() - started > TIME_CAP else code), usage.ru_maxrss


def run(case: Case, repo: Path) -> list[object]:
    with tempfile.TemporaryDirectory(prefix="dhss-files-") as name:
        directory = Path(name)
        if not case.file.startswith("/"):
            (directory / case.file).write_bytes(case.data)
        stderr_path = directory / "stderr"
        env = {**os.environ, "PYTHONPATH": str(repo), "PULUMI_CONFIG_PASSPHRASE": "x"}
        with open(stderr_path, "wb") as stderr:
            started = time.monotonic()
            process = subprocess.Popen(
                command(case, repo, directory),
                cwd=repo,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                preexec_fn=_limits,  # noqa: PLW1509  (a fork-time rlimit, no threads here)
            )
            code, peak = _wait(process, started)
            elapsed = time.monotonic() - started
        err = stderr_path.read_bytes()
    lines = err.decode(errors="replace").replace(str(directory), "DIR").strip().splitlines()
    last = lines[-1][:70] if lines else ""
    return [
        case.command,
        case.name,
        len(case.data) if case.data else "-",
        code,
        f"{elapsed:.1f}",
        f"{peak / 1024:.0f}",
        len(err),
        err.count(b"\n"),
        "yes" if b"Traceback" in err else "no",
        f"`{last}`",
    ]


def main(repo: Path | None = None) -> str:
    root = (repo or Path(__file__).resolve().parent.parent).resolve()
    cases = CASES
    if (root / "dhss_components" / "operator_files.py").exists():
        cases = [*CASES, *READER_CASES]
    rows = [run(case, root) for case in cases]
    label = "" if repo is None else " (the code of --repo)"
    return title(f"Operator files: hostile input and the limits' worst case{label}") + table(
        [
            "command",
            "input",
            "bytes",
            "exit",
            "s",
            "peak MiB",
            "stderr bytes",
            "stderr lines",
            "traceback",
            "stderr's last line",
        ],
        rows,
        right=(2, 3, 4, 5, 6, 7),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.operator_files")
    parser.add_argument("--repo", type=Path, help="the checkout whose code runs (default: this)")
    print(main(parser.parse_args().repo))
