"""Stands in for ``share.sh`` on a fake service instance: sshd runs it in place of the command
it was sent (``ForceCommand``), as that command's user.

It records what it was asked (``ran.jsonl``: the command's words, and the SHA-256 of the script
the here-document carries), refuses anything but ``check``, and answers a check as
``share.sh check`` does, from the guest's state in ``guest.json`` (by volume id: ``drift``
lines, ``stderr``, ``exit``): ``drift <share> <aspect>: <what>`` per finding, or ``ok <share>``;
exit 0 as declared, 3 on drift, 1 when it cannot tell. Standard library only.

    python3 guest_check_standin.py STATE_DIR
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from pathlib import Path

DELIMITER = "DHSS_SHARE_SCRIPT"


def _value(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1] if flag in words else ""


def main() -> int:
    state = Path(sys.argv[1])
    command = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    first, _, rest = command.partition("\n")
    words = shlex.split(first.split("<<", 1)[0])
    action = words[words.index("--") + 1] if "--" in words else ""
    script = rest.removesuffix(f"{DELIMITER}\n")
    record = {
        "words": words,
        "action": action,
        "script_sha256": hashlib.sha256(script.encode()).hexdigest(),
        "user": os.environ.get("USER", ""),
    }
    with open(state / "ran.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
    if action != "check":
        print(f"the fake guest runs share.sh check only, not {action!r}", file=sys.stderr)
        return 1
    name, volume = _value(words, "--name"), _value(words, "--volume-id")
    answers = (
        json.loads((state / "guest.json").read_text()) if (state / "guest.json").exists() else {}
    )
    answer = answers.get(volume, {})
    drift = answer.get("drift", [])
    for line in drift:
        print(f"drift {name} {line}")
    if answer.get("stderr"):
        print(answer["stderr"], file=sys.stderr)
    status = int(answer.get("exit", 3 if drift else 0))
    if status == 0:
        print(f"ok {name}")
    return status


if __name__ == "__main__":
    sys.exit(main())
