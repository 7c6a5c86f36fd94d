"""What the share tests share: make shares on the guest, reach them as a client would, look.

No tests here (this module is named test_share_* only to sit with the share tests). Every share
command goes through ``Guest.ssh`` exactly as ``render_ensure_command`` and
``render_delete_command`` produce it, which is what the Share component's ``remote.Command``
runs. Clients come from the host, which the guest sees as ``HOST_ADDRESS_SEEN_BY_GUEST``:
``nfs-cat``/``nfs-cp``/``nfs-ls`` (libnfs, NFSv4) and ``smbclient``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import shlex
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from dhss_components import share_script
from dhss_components.share_script import (
    AccessClient,
    ShareScriptParams,
    render_delete_command,
    render_ensure_command,
)
from tests.guest.harness import HOST_ADDRESS_SEEN_BY_GUEST, Guest

HOST = HOST_ADDRESS_SEEN_BY_GUEST
NOT_THE_HOST = "10.0.2.99"  # on the guest's network, but no client of ours comes from it
CLIENT_TIMEOUT = 120
GRACE_WAIT = 300  # nfsd's grace period is 90 s of the guest's (emulated, slow) time


def rw(address: str) -> AccessClient:
    return AccessClient("rw", ipaddress.IPv4Network(address))


def ro(address: str) -> AccessClient:
    return AccessClient("ro", ipaddress.IPv4Network(address))


@dataclass(frozen=True)
class GuestShare(ShareScriptParams):
    """A share's script parameters with the id of the volume it is made of on the guest."""

    volume_id: str = ""


def ensure_command(share: GuestShare) -> str:
    return render_ensure_command(share, share.volume_id)


def delete_command(share: GuestShare) -> str:
    return render_delete_command(share)


def by_id(volume_id: str) -> str:
    return f"/dev/disk/by-id/virtio-{volume_id[:20]}"


def root(guest: Guest, script: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a shell script as root on the guest (test set-up and inspection, not the product)."""
    return guest.ssh(f"sudo -n bash -euo pipefail -c {shlex.quote(script)}", check=check)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit {result.returncode}\n--- stdout ---\n{result.stdout}"
        f"\n--- stderr ---\n{result.stderr}"
    )


class Shares:
    """The shares and volumes one test makes; ``cleanup`` deletes the shares, detaches volumes."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.made: dict[str, GuestShare] = {}
        self.volumes: list[str] = []

    def volume(self, size: str = "1G") -> str:
        """Attach a new volume (a Cinder volume attached by Nova) and return its id."""
        volume_id = str(uuid.uuid4())
        self.guest.attach_volume(volume_id, size)
        self.volumes.append(volume_id)
        return volume_id

    def params(
        self,
        name: str,
        volume_id: str,
        protocol: str = "NFS",
        clients: tuple[AccessClient, ...] = (),
        **more: object,
    ) -> GuestShare:
        return GuestShare(
            name=name,
            volume_id=volume_id,
            protocol=protocol,  # type: ignore[arg-type]
            size_gib=int(more.pop("size_gib", 1)),  # type: ignore[call-overload]
            clients=clients,
            mount_root=str(more.pop("mount_root", "/shares")),
            fstype=more.pop("fstype", "ext4"),  # type: ignore[arg-type]
            device_timeout=int(more.pop("device_timeout", 120)),  # type: ignore[call-overload]
            **more,
        )

    def ensure(
        self, params: GuestShare, *, ok: bool = True, stop_at: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """Run the ensure command the Share component declares; by default it must succeed.

        ``stop_at``: a step boundary of share.sh (``checkpoint`` there) where the run is
        killed with SIGKILL; the run must get there.
        """
        self.made[params.name] = params
        result = self.guest.ssh(stopping_at(ensure_command(params), "ensure", stop_at))
        if stop_at:
            assert_killed_at(result, f"ensure:{stop_at}")
        elif ok:
            assert result.returncode == 0, f"ensure {params.name} failed: {output(result)}"
        return result

    def update(self, params: GuestShare, **changes: object) -> GuestShare:
        """Ensure again with some parameters changed (what a config change does)."""
        changed = replace(params, **changes)  # type: ignore[arg-type]
        self.ensure(changed)
        return changed

    def delete(
        self, params: GuestShare, *, ok: bool = True, stop_at: str = ""
    ) -> subprocess.CompletedProcess[str]:
        result = self.guest.ssh(stopping_at(delete_command(params), "delete", stop_at))
        if stop_at:
            assert_killed_at(result, f"delete:{stop_at}")
        elif ok:
            assert result.returncode == 0, f"delete {params.name} failed: {output(result)}"
            self.made.pop(params.name, None)
        return result

    def cleanup(self) -> None:
        failures = []
        for params in list(self.made.values()):
            result = self.delete(params, ok=False)
            if result.returncode != 0:
                failures.append(f"delete {params.name}: {output(result)}")
        attached = set(self.guest.attached_volumes())
        for volume_id in self.volumes:
            if volume_id in attached:
                self.guest.detach_volume(volume_id)
        assert not failures, "\n".join(failures)


# --- stopping the script at a step boundary ---------------------------------------------

SCRIPT_PATH = Path(share_script.__file__).with_name("scripts") / "share.sh"
# The boundaries each action reaches, in the order it reaches them.
CREATE = ["marked", "formatted", "mounted", "opened", "in-fstab", "rules-written", "exported"]
UPDATE = ["access-cut", "rules-written", "exported"]  # rules changed and volume grown
DELETE = ["rules-removed", "unexported", "out-of-fstab", "unmounted"]
# ensure on a share whose volume was detached under it
WITHDRAW = ["rules-removed", "unexported", "out-of-fstab", "unmounted"]
# ensure of a share whose volume is a copy of another share's on the same server
COPY = ["new-uuid"]


_SUDO_BASH = "sudo -n bash -s --"


def checkpoints() -> set[str]:
    """The step boundaries that share.sh names (``checkpoint NAME``)."""
    return set(re.findall(r"^\s*checkpoint ([a-z-]+)$", SCRIPT_PATH.read_text(), re.MULTILINE))


def stopping_at(command: str, action: str, checkpoint: str) -> str:
    """``command`` (as rendered) with share.sh told to kill itself at ``action:checkpoint``.

    The script reads DHSS_SHARE_STOP_AT, set here on sudo's command line (the only change to
    the command), and SIGKILLs itself there, as a crash or a reboot would stop it.
    """
    if not checkpoint:
        return command
    assert checkpoint in checkpoints(), f"share.sh has no checkpoint {checkpoint!r}"
    assert command.startswith(_SUDO_BASH), command[:80]
    stop = f"sudo -n DHSS_SHARE_STOP_AT={action}:{checkpoint} bash -s --"
    return stop + command.removeprefix(_SUDO_BASH)


def assert_killed_at(result: subprocess.CompletedProcess[str], where: str) -> None:
    """The run got to the step boundary ``where`` and died there by SIGKILL."""
    assert f"killed at {where} (DHSS_SHARE_STOP_AT)" in result.stderr, output(result)
    assert result.returncode == 128 + signal.SIGKILL, output(result)


def shares_for(guest: Guest) -> Iterator[Shares]:
    """Body of the per-module ``shares`` fixture."""
    made = Shares(guest)
    try:
        yield made
    finally:
        made.cleanup()


# --- clients on the host ------------------------------------------------------------------


def nfs_url(guest: Guest, path: str) -> str:
    return f"nfs://127.0.0.1{path}?version=4&nfsport={guest.nfs_port}"


def _client(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False)


def _nfs_client(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a libnfs tool, waiting out the NFSv4 grace period as a kernel client does.

    For 90 s after nfsd starts (at boot, say), it answers OPEN with NFS4ERR_GRACE so that
    clients can reclaim their state; the kernel client retries, libnfs's tools give up.
    """
    deadline = time.monotonic() + GRACE_WAIT
    while True:
        result = _client(argv)
        if "NFS4ERR_GRACE" not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(3)


def nfs_read(guest: Guest, path: str) -> subprocess.CompletedProcess[str]:
    """Read a file through the share's NFS export, from the host (NFSv4, libnfs)."""
    return _nfs_client(["nfs-cat", nfs_url(guest, path)])


def nfs_list(guest: Guest, path: str) -> subprocess.CompletedProcess[str]:
    return _nfs_client(["nfs-ls", nfs_url(guest, path)])


def nfs_write(guest: Guest, path: str, text: str) -> subprocess.CompletedProcess[str]:
    """Create a file through the share's NFS export, from the host."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "data"
        local.write_text(text)
        return _nfs_client(["nfs-cp", str(local), nfs_url(guest, path)])


def smb(guest: Guest, share: str, commands: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """smbclient as a guest user (-N) on the share, from the host, in ``workdir``."""
    server = f"//127.0.0.1/{share}"
    script = f"lcd {workdir}; {commands}"
    return _client(["smbclient", "-N", "-p", str(guest.smb_port), server, "-c", script])


def smb_write(guest: Guest, share: str, name: str, text: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data").write_text(text)
        return smb(guest, share, f"put data {name}", Path(tmp))


def smb_read(guest: Guest, share: str, name: str) -> tuple[subprocess.CompletedProcess[str], str]:
    with tempfile.TemporaryDirectory() as tmp:
        result = smb(guest, share, f"get {name} data", Path(tmp))
        local = Path(tmp) / "data"
        return result, local.read_text() if local.exists() else ""


# --- what a refused client sees -----------------------------------------------------------


def assert_nfs_refused(result: subprocess.CompletedProcess[str], path: str, when: str = "") -> None:
    """libnfs was turned away by the export rules, not by anything else (a timeout, a crash).

    NFSv4's pseudo-root hides an export from a client that no rule admits, so the mount of the
    path fails: libnfs says NFS4ERR_NOENT for it, or, when no export at all is open to the
    client, ends its mount callback with no error text.
    """
    assert result.returncode != 0, f"{when}: {output(result)}"
    refusals = (f"(path {path}) failed with NFS4ERR_NOENT", "mount_cb: (null)")
    assert any(r in result.stderr for r in refusals), f"{when}: {output(result)}"


def assert_nfs_read_only(result: subprocess.CompletedProcess[str], when: str = "") -> None:
    """An NFS write failed because the export is read-only for this client (NFS4ERR_ROFS)."""
    assert result.returncode != 0, f"{when}: {output(result)}"
    assert "ROFS" in result.stderr or "Read-only" in result.stderr, f"{when}: {output(result)}"


def assert_smb_refused(result: subprocess.CompletedProcess[str], when: str = "") -> None:
    """Samba turned smbclient away: "hosts allow", "read only" or the root preexec said no."""
    assert result.returncode != 0, f"{when}: {output(result)}"
    assert "NT_STATUS_ACCESS_DENIED" in result.stdout + result.stderr, f"{when}: {output(result)}"


# --- what the guest shows -----------------------------------------------------------------


@dataclass(frozen=True)
class GuestView:
    """What an operator would look at on the service instance."""

    mounts: dict[str, tuple[str, str]]  # mount point under the root -> (source, fs UUID)
    fstab: list[str]  # /etc/fstab lines that mention the root
    exports_files: dict[str, str]  # /etc/exports.d file name -> contents
    exportfs: list[tuple[str, str]]  # (path, "client(options)") from exportfs -v
    samba_shares: dict[str, dict[str, str]]  # net conf share -> its parameters
    directories: list[str]  # entries of the mount root

    def exports_of(self, path: str) -> list[str]:
        return [client for p, client in self.exportfs if p == path]


def look(guest: Guest, mount_root: str = "/shares") -> GuestView:
    """One ssh session that reads the guest's mounts, fstab, exports and Samba registry."""
    script = f"""
        echo '@@mounts'; findmnt -rn -o TARGET,SOURCE,UUID | awk '$1 ~ "^{mount_root}/"' || true
        echo '@@fstab'; grep -F ' {mount_root}/' /etc/fstab || true
        echo '@@exports.d'
        for f in /etc/exports.d/*.exports; do
            if [ -e "$f" ]; then echo "@file ${{f##*/}}"; cat "$f"; fi
        done
        echo '@@exportfs'; exportfs -v
        echo '@@samba'; net conf list 2>/dev/null || true
        echo '@@dirs'; ls -A {mount_root} 2>/dev/null || true
    """
    text = root(guest, script).stdout
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:]
            sections[current] = []
        elif current:
            sections[current].append(line)

    mounts = {}
    for line in sections["mounts"]:
        target, source, *fs_uuid = line.split()
        mounts[target] = (source, fs_uuid[0] if fs_uuid else "")

    exports_files: dict[str, str] = {}
    name = ""
    for line in sections["exports.d"]:
        if line.startswith("@file "):
            name = line.removeprefix("@file ")
            exports_files[name] = ""
        else:
            exports_files[name] += line + "\n"

    # exportfs -v prints "path<whitespace>client(options)", or, when the path is long, the
    # path alone and the client on the next line.
    exportfs = []
    path = ""
    for line in sections["exportfs"]:
        words = line.split()
        if not words:
            continue
        if line.startswith("/"):
            path, words = words[0], words[1:]
        exportfs += [(path, word) for word in words]

    samba: dict[str, dict[str, str]] = {}
    share = ""
    for line in sections["samba"]:
        if line.startswith("["):
            share = line.strip("[]")
            samba[share] = {}
        elif " = " in line and share:
            key, _, value = line.strip().partition(" = ")
            samba[share][key] = value

    return GuestView(
        mounts=mounts,
        fstab=sections["fstab"],
        exports_files=exports_files,
        exportfs=exportfs,
        samba_shares={k: v for k, v in samba.items() if k != "global"},
        directories=sections["dirs"],
    )


def fs_uuid(guest: Guest, volume_id: str) -> str:
    return root(guest, f"blkid -p -s UUID -o value {by_id(volume_id)}").stdout.strip()


def fs_created(guest: Guest, volume_id: str) -> str:
    """When the volume's filesystem was made (mkfs), from its superblock: a format changes it."""
    text = root(guest, f"dumpe2fs -h {by_id(volume_id)} 2>/dev/null").stdout
    return next(line for line in text.splitlines() if line.startswith("Filesystem created:"))


def read_on_volume(image: Path, file: str) -> str:
    """Read a file straight from a (detached) volume's qcow2, on the host, with debugfs."""
    with tempfile.TemporaryDirectory(dir=image.parent) as tmp:
        raw = Path(tmp) / "raw"
        subprocess.run(
            ["qemu-img", "convert", "-U", "-O", "raw", str(image), str(raw)],
            check=True,
            capture_output=True,
        )
        result = subprocess.run(
            ["debugfs", "-R", f"cat {file}", str(raw)], capture_output=True, text=True, check=True
        )
        return result.stdout


# --- one share, as the service instance holds it -----------------------------------------

DATA_FILE = "data.bin"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class ShareState:
    """One share on the guest, read in one ssh session: what points at what."""

    volume_uuid: str  # the filesystem UUID on the share's volume ("" if none, or detached)
    mounted: str  # "volume": the share's volume is mounted on the path; "": nothing; else other
    fstab: list[str]  # /etc/fstab lines for the path
    exports_file: list[str] | None  # entries of the share's exports file (None: no file)
    exported: list[str]  # "client level" that mountd's table (etab) gives the path
    samba: dict[str, str]  # the share's Samba registry section ({}: none)
    root_mode: str  # mode of the share root ("" if the path is missing)
    data_sha256: str  # of DATA_FILE on the volume, mounted or not ("" if absent)
    size_mib: int  # size of the mounted filesystem (0 if not mounted)

    def assert_nothing_points_at_an_unmounted_filesystem(self, when: str) -> None:
        """No fstab line, export or Samba share for the path unless the volume is mounted
        there, and no fstab line for another filesystem."""
        if self.mounted != "volume":
            assert not self.fstab, f"{when}: fstab line for an unmounted path: {self}"
            assert not self.exported, f"{when}: exported while not mounted: {self}"
            assert not self.exports_file, f"{when}: exports file while not mounted: {self}"
            assert not self.samba, f"{when}: Samba share while not mounted: {self}"
        for line in self.fstab:
            assert line.startswith(f"UUID={self.volume_uuid} "), f"{when}: {line} {self}"


def share_state(guest: Guest, params: GuestShare) -> ShareState:
    path = f"{params.mount_root}/{params.name}"
    device = by_id(params.volume_id)
    showshare = (
        f"net conf showshare {params.name} 2>/dev/null || true"
        if params.protocol == "CIFS"
        else ":"
    )
    script = f"""
        echo @@uuid; if [ -b {device} ]; then blkid -p -s UUID -o value {device} || true; fi
        echo @@mount
        if number=$(mountpoint -d {path} 2>/dev/null); then
            volume=""
            if [ -b {device} ]; then
                volume=$(cat /sys/class/block/$(basename $(readlink -f {device}))/dev)
            fi
            if [ "$number" = "$volume" ]; then echo volume; else echo "other $number"; fi
        fi
        echo @@fstab; awk -v p={path} '$2 == p' /etc/fstab
        echo @@exports
        if [ -e /etc/exports.d/{params.name}.exports ]; then
            echo file; grep -v '^#' /etc/exports.d/{params.name}.exports || true
        fi
        echo @@etab; awk -v p={path} '$1 == p {{print $2}}' /var/lib/nfs/etab
        echo @@samba; {showshare}
        echo @@mode; stat -c %a {path} 2>/dev/null || true
        echo @@data
        if mountpoint -q {path}; then  # (a mount whose volume is gone reads nothing)
            if [ -f {path}/{DATA_FILE} ]; then sha256sum < {path}/{DATA_FILE} || true; fi
        elif [ -b {device} ]; then
            debugfs -R 'cat /{DATA_FILE}' {device} 2>/dev/null | sha256sum
        fi | cut -d' ' -f1
        echo @@size; if mountpoint -q {path}; then df --output=size -B1M {path} | tail -1; fi
    """
    sections: dict[str, list[str]] = {}
    current = ""
    for line in root(guest, script).stdout.splitlines():
        if line.startswith("@@"):
            current = line[2:]
            sections[current] = []
        elif current and line.strip():
            sections[current].append(line)
    exports = sections["exports"]
    samba: dict[str, str] = {}
    for line in sections["samba"]:
        if " = " in line:
            key, _, value = line.strip().partition(" = ")
            samba[key] = value
    return ShareState(
        volume_uuid="".join(sections["uuid"]),
        mounted="".join(sections["mount"]),
        fstab=sections["fstab"],
        exports_file=exports[1:] if exports[:1] == ["file"] else None,
        exported=sorted(
            f"{entry.split('(')[0]} {entry.split('(')[1][:2]}" for entry in sections["etab"]
        ),
        samba=samba,
        root_mode="".join(sections["mode"]),
        data_sha256="".join(sections["data"]).replace(EMPTY_SHA256, ""),
        size_mib=int("".join(sections["size"]) or 0),
    )


def put_data(guest: Guest, params: GuestShare) -> str:
    """Write DATA_FILE (random, 256 KiB) on the mounted share, on disk; its sha256."""
    path = f"{params.mount_root}/{params.name}/{DATA_FILE}"
    return root(
        guest,
        f"head -c 262144 /dev/urandom > {path}; sync {path}; sha256sum < {path} | cut -d' ' -f1",
    ).stdout.strip()


def assert_host_refused_by_the_rules(
    guest: Guest, params: GuestShare, state: ShareState, when: str
) -> None:
    """The host's client is turned away from the share, and by its access rules.

    The share's volume is mounted and served (to other clients, or to none), no rule admits
    the host, and the client's error is the one those rules give (assert_nfs_refused,
    assert_smb_refused).
    """
    path = f"{params.mount_root}/{params.name}"
    assert state.mounted == "volume", f"{when}: {state}"
    if params.protocol == "NFS":
        assert not [e for e in state.exported if e.startswith(f"{HOST} ")], f"{when}: {state}"
        assert_nfs_refused(nfs_list(guest, path), path, when)
    else:
        assert state.samba, f"{when}: no Samba share: {state}"
        assert HOST not in state.samba["hosts allow"].split(), f"{when}: {state}"
        result, _ = smb_read(guest, params.name, DATA_FILE)
        assert_smb_refused(result, when)


def assert_host_served(guest: Guest, params: GuestShare, sha256: str, when: str) -> None:
    """The host's client reads DATA_FILE through the share, with the given digest."""
    path = f"{params.mount_root}/{params.name}/{DATA_FILE}"
    with tempfile.TemporaryDirectory() as tmp:
        if params.protocol == "NFS":
            result = _nfs_client(["nfs-cp", nfs_url(guest, path), f"{tmp}/{DATA_FILE}"])
        else:
            result = smb(guest, params.name, f"get {DATA_FILE}", Path(tmp))
        local = Path(tmp) / DATA_FILE
        got = hashlib.sha256(local.read_bytes()).hexdigest() if local.exists() else ""
    assert got == sha256, f"{when}: {output(result)}"
