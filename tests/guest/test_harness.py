"""The guest harness does what the share-script tests rely on, on a real guest."""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.guest.harness import Guest, parse_size, volume_sha256

GIB = 1 << 30


def by_id(volume_id: str) -> str:
    return f"/dev/disk/by-id/virtio-{volume_id[:20]}"


def device_name(guest: Guest, volume_id: str) -> str:
    """The /dev/vdX the guest gave the volume (what Nova would only guess)."""
    return guest.ssh(f"readlink -f {by_id(volume_id)}", check=True).stdout.strip()


def device_size(guest: Guest, device: str) -> int:
    return int(guest.ssh(f"sudo -n blockdev --getsize64 {device}", check=True).stdout)


def kernel_order(device: str) -> tuple[int, str]:
    """Sort key of vdX names in the order the kernel hands them out (vdz < vdaa)."""
    name = device.rsplit("/", 1)[-1]
    return len(name), name


def write_marker(guest: Guest, volume_id: str, marker: str) -> None:
    guest.ssh(
        f"sudo -n dd of={by_id(volume_id)} bs=512 count=1 conv=fsync status=none",
        input=marker.encode().ljust(512, b"\0"),
        check=True,
    )


def read_marker(guest: Guest, volume_id: str, length: int) -> str:
    result = guest.ssh(f"sudo -n head -c {length} {by_id(volume_id)}", check=True)
    return result.stdout


def read_host_bytes(path: Path, length: int, tmp_path: Path) -> bytes:
    """The first bytes of a qcow2's virtual disk, read on the host."""
    raw = tmp_path / f"{path.stem}.head"
    subprocess.run(
        [
            "qemu-img",
            "dd",
            "-f",
            "qcow2",
            "-O",
            "raw",
            "bs=512",
            "count=1",
            f"if={path}",
            f"of={raw}",
        ],
        check=True,
        capture_output=True,
    )
    return raw.read_bytes()[:length]


def virtual_size(path: Path) -> int:
    info = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(json.loads(info.stdout)["virtual-size"])


@pytest.mark.usefixtures("host_tools")
def test_volume_sha256_depends_only_on_what_the_disk_holds(tmp_path: Path) -> None:
    def volume(name: str, *writes: str) -> Path:
        path = tmp_path / f"{name}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "3M"], check=True)
        for write in writes:
            subprocess.run(
                ["qemu-io", "-f", "qcow2", "-c", write, str(path)], check=True, capture_output=True
            )
        return path

    blank = volume_sha256(volume("blank"))
    # Zeros written (allocated clusters) read the same as never-written clusters.
    assert volume_sha256(volume("zeros", "write -P 0 0 2M", "write -z 2M 512k")) == blank
    one_byte = volume_sha256(volume("byte", "write -P 0x41 3145727 1"))  # the very last byte
    assert one_byte != blank
    assert (
        volume_sha256(volume("byte-again", "write -P 0 0 1M", "write -P 0x41 3145727 1"))
        == one_byte
    )
    path = volume("grown")
    subprocess.run(["qemu-img", "resize", "-q", str(path), "4M"], check=True)
    assert volume_sha256(path) != blank  # four zero MiB are not three


def test_parse_size_reads_qemu_img_sizes() -> None:
    assert [parse_size(s) for s in ("4096", "1K", "512M", "2G", "1T", "3GiB")] == [
        4096,
        1024,
        512 << 20,
        2 << 30,
        1 << 40,
        3 << 30,
    ]
    with pytest.raises(ValueError, match=r"1\.5G"):
        parse_size("1.5G")


def test_ssh_logs_in_as_manila_with_passwordless_sudo(guest: Guest) -> None:
    assert guest.ssh("id -un; sudo -n id -un", check=True).stdout.split() == ["manila", "root"]
    assert guest.ssh("id -un", user="root", check=True).stdout == "root\n"
    # No PTY, like Pulumi's remote.Command.
    assert guest.ssh("tty").stdout == "not a tty\n"


def test_ssh_runs_the_command_string_as_given(guest: Guest) -> None:
    result = guest.ssh(
        """printf '%s|' "a b" 'c$d' && echo "$HOME" | tr a-z A-Z; echo oops >&2; exit 3"""
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        3,
        "a b|c$d|/HOME/MANILA\n",
        "oops\n",
    )
    assert guest.ssh("cat", input="héllo\n").stdout == "héllo\n"
    assert guest.ssh("wc -c", input=bytes(range(256)) * 4).stdout.strip() == "1024"
    with pytest.raises(subprocess.CalledProcessError, match="no such thing"):
        guest.ssh("echo no such thing >&2; false", check=True)


@pytest.mark.parametrize("multiplex", [True, False], ids=["multiplexed", "own-connections"])
def test_ssh_runs_ten_sessions_at_once(guest: Guest, multiplex: bool) -> None:
    # Each session checks in, then waits until all ten have: only concurrent sessions pass.
    folder = f"/tmp/sessions-{uuid.uuid4()}"
    script = (
        f"mkdir -p {folder} && touch {folder}/$SESSION && "
        f"for i in $(seq 1200); do [ $(ls {folder} | wc -l) -ge 10 ] && exit 0; sleep 0.1; done; "
        "echo never saw ten sessions at once >&2; exit 1"
    )

    def session(number: int) -> subprocess.CompletedProcess[str]:
        return guest.ssh(f"SESSION={number}; {script}", multiplex=multiplex, timeout=180)

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(session, range(10)))
    assert [(r.returncode, r.stderr) for r in results] == [(0, "")] * 10
    guest.ssh(f"rm -rf {folder}", check=True)


def test_resize_volume_grows_the_disk_the_guest_sees(guest: Guest, volume_id: str) -> None:
    path = guest.attach_volume(volume_id, "1G")
    assert device_size(guest, by_id(volume_id)) == 1 * GIB
    guest.resize_volume(volume_id, "2G")  # online, like Cinder's extend of an in-use volume
    assert device_size(guest, by_id(volume_id)) == 2 * GIB
    guest.detach_volume(volume_id)
    assert virtual_size(path) == 2 * GIB
    guest.resize_volume(volume_id, "3G")  # offline
    assert virtual_size(path) == 3 * GIB


def test_detach_and_reattach_keeps_the_data(guest: Guest, volume_id: str) -> None:
    token = secrets.token_hex(16)
    path = guest.attach_volume(volume_id, "256M")
    blank = volume_sha256(path)
    device = by_id(volume_id)
    guest.ssh(
        f"sudo -n mkfs.ext4 -q {device} && sudo -n mkdir -p /mnt/{volume_id} && "
        f"sudo -n mount {device} /mnt/{volume_id} && "
        f"echo {token} | sudo -n tee /mnt/{volume_id}/token && sudo -n umount /mnt/{volume_id}",
        check=True,
    )
    guest.detach_volume(volume_id)
    assert path.exists()
    written = volume_sha256(path)
    assert written != blank

    assert guest.attach_volume(volume_id) == path
    assert device_size(guest, device) == 256 << 20
    result = guest.ssh(
        f"sudo -n mount -o ro {device} /mnt/{volume_id} && cat /mnt/{volume_id}/token; "
        f"sudo -n umount /mnt/{volume_id}",
        check=True,
    )
    assert result.stdout == f"{token}\n"
    guest.detach_volume(volume_id)
    assert volume_sha256(path) == written  # attached and read, never written


def test_twelve_volumes_hot_plug_and_unplug(guest: Guest) -> None:
    volume_ids = [str(uuid.uuid4()) for _ in range(12)]
    for volume_id in volume_ids:
        guest.attach_volume(volume_id, "64M", wait=False)
    links = " ".join(by_id(v) for v in volume_ids)
    guest.ssh(
        f"for i in $(seq 600); do ok=1; for l in {links}; do [ -b $l ] || ok=0; done; "
        '[ $ok = 1 ] && exit 0; sleep 0.1; done; echo "not all 12 disks appeared" >&2; exit 1',
        check=True,
    )
    names = {v: device_name(guest, v) for v in volume_ids}
    assert len(set(names.values())) == 12
    for volume_id in volume_ids:
        guest.detach_volume(volume_id)
    assert guest.ssh(f"ls {links}").returncode != 0


def test_by_id_links_follow_the_volume_through_a_reboot_and_a_swapped_attach_order(
    guest: Guest, tmp_path: Path
) -> None:
    volume_a, volume_b = str(uuid.uuid4()), str(uuid.uuid4())
    sizes = {volume_a: 1 * GIB, volume_b: 2 * GIB}
    markers = {volume_a: f"volume A {volume_a}", volume_b: f"volume B {volume_b}"}

    # A, then B.
    for volume_id in (volume_a, volume_b):
        guest.attach_volume(volume_id, str(sizes[volume_id]))
    first = {v: device_name(guest, v) for v in (volume_a, volume_b)}
    assert kernel_order(first[volume_a]) < kernel_order(first[volume_b])
    for volume_id in (volume_a, volume_b):
        assert device_size(guest, by_id(volume_id)) == sizes[volume_id]
        write_marker(guest, volume_id, markers[volume_id])
    guest.detach_volume(volume_b)

    # A reboot keeps ssh working and A attached (qemu keeps hot-plugged disks).
    before = guest.boot_id()
    guest.reboot()
    assert guest.boot_id() != before
    assert guest.ssh("sudo -n true && id -un", check=True).stdout == "manila\n"
    assert read_marker(guest, volume_a, len(markers[volume_a])) == markers[volume_a]
    guest.detach_volume(volume_a)

    # On the fresh boot, B first this time: the names swap, the by-id links do not.
    for volume_id in (volume_b, volume_a):
        guest.attach_volume(volume_id)
    second = {v: device_name(guest, v) for v in (volume_a, volume_b)}
    assert second == {volume_a: first[volume_b], volume_b: first[volume_a]}
    for volume_id in (volume_a, volume_b):
        assert device_size(guest, by_id(volume_id)) == sizes[volume_id]
        assert read_marker(guest, volume_id, len(markers[volume_id])) == markers[volume_id]
        write_marker(guest, volume_id, markers[volume_id].upper())
    for volume_id in (volume_b, volume_a):
        guest.detach_volume(volume_id)

    # What the guest wrote through each link is in that volume's own file on the host.
    for volume_id in (volume_a, volume_b):
        marker = markers[volume_id].upper()
        assert (
            read_host_bytes(guest.volume_path(volume_id), len(marker), tmp_path) == marker.encode()
        )
