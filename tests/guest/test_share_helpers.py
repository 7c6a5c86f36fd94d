"""What the share tests share: make shares on the guest, reach them as a client would, look.

No tests here (this module is named test_share_* only to sit with the share tests). Every share
command goes through ``Guest.ssh`` exactly as ``render_ensure_command`` and
``render_delete_command`` produce it, which is what the Share component's ``remote.Command``
runs. Clients come from the host, which the guest sees as ``HOST_ADDRESS_SEEN_BY_GUEST``:
``nfs-cat``/``nfs-cp``/``nfs-ls`` (libnfs, NFSv4) and ``smbclient``.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

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
    return AccessClient("rw", address)


def ro(address: str) -> AccessClient:
    return AccessClient("ro", address)


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
        self.made: dict[str, ShareScriptParams] = {}
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
    ) -> ShareScriptParams:
        return ShareScriptParams(
            name=name,
            volume_id=volume_id,
            protocol=protocol,  # type: ignore[arg-type]
            size_gib=int(more.pop("size_gib", 1)),  # type: ignore[call-overload]
            clients=clients,
            **more,  # type: ignore[arg-type]
        )

    def ensure(
        self, params: ShareScriptParams, *, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the ensure command the Share component declares; by default it must succeed."""
        self.made[params.name] = params
        result = self.guest.ssh(render_ensure_command(params))
        if ok:
            assert result.returncode == 0, f"ensure {params.name} failed: {output(result)}"
        return result

    def update(self, params: ShareScriptParams, **changes: object) -> ShareScriptParams:
        """Ensure again with some parameters changed (what a config change does)."""
        changed = replace(params, **changes)  # type: ignore[arg-type]
        self.ensure(changed)
        return changed

    def delete(
        self, params: ShareScriptParams, *, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = self.guest.ssh(render_delete_command(params))
        if ok:
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
