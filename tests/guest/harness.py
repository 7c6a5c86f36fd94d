"""A real Debian guest under qemu, shaped like Manila's service instance.

The share scripts run on a Nova server in production. Here they run on a Debian bookworm
guest booted by qemu (TCG: nested KVM does not work on these machines), reached over ssh
through qemu's user-mode network, with Cinder volumes played by qcow2 files hot-plugged
over QMP as virtio-blk disks whose serial is the volume id cut to 20 characters, exactly
as Nova attaches them.

* :func:`build_guest_image` builds the root filesystem, kernel and initrd once with
  mmdebstrap and caches them by a hash of the recipe.
* :class:`Guest` boots one guest (root disk ``snapshot=on``: the cached image is never
  written), runs commands over ssh and attaches, detaches and grows volumes.
* :func:`volume_sha256` checksums what a volume holds, to prove a disk was left untouched.
* :func:`generate_host_key` and :func:`write_nocloud_seed`: the guest gets its SSH host key
  as the program's instance does, from the program's own user data
  (``host_keys.cloud_config``), applied by cloud-init from a NoCloud seed disk.

See ``tests/guest/README.md`` for the measured timings and the host packages.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from dhss_components.host_keys import cloud_config

# qemu user-mode networking: every connection from the host reaches the guest from here.
HOST_ADDRESS_SEEN_BY_GUEST = "10.0.2.2"
# ... and the guest itself is this address on that network.
GUEST_ADDRESS = "10.0.2.15"

# Debian packages the host needs: qemu and its image tool, mmdebstrap for the image, the
# ssh client, and the userspace SMB/NFS clients (the host kernel has no NFS/CIFS client).
HOST_APT_PACKAGES = (
    "qemu-system-x86",
    "qemu-utils",
    "mmdebstrap",
    "openssh-client",
    "e2fsprogs",
    "genisoimage",
    "smbclient",
    "libnfs-utils",
)
# The programs the harness itself runs, and the package that ships each.
HOST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "mmdebstrap": "mmdebstrap",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mkfs.ext4": "e2fsprogs",
    "genisoimage": "genisoimage",
}

# Bump when build_guest_image changes in a way the recipe text below does not show.
IMAGE_RECIPE_VERSION = 1
SUITE = "bookworm"
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
GUEST_PACKAGES = (
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "openssh-server",
    "sudo",
    "nfs-kernel-server",
    "nfs-common",
    "samba",
    "samba-common-bin",
    "iproute2",
    "ifupdown",
    "isc-dhcp-client",
    "e2fsprogs",
    "util-linux",
    "kmod",
    "initramfs-tools",
    "procps",
    "dbus",
    # The instance's user data (its pinned SSH host key) is applied by cloud-init, as on a
    # cloud image booted by Nova; the harness hands it over on a NoCloud seed disk.
    "cloud-init",
)
ROOTFS_SIZE = "3G"
# TCG's "max" CPU, less three features that only cost time under emulation: ERMS/FSRM make
# the kernel clear and copy pages with `rep stosb`/`movsb` (emulated a byte at a time), and
# LA57 adds a fifth page-table level to every TLB miss. Measured: about 15% less CPU to boot.
QEMU_CPU = "max,erms=off,fsrm=off,la57=off"
QEMU_SMP = 2
# Kernel modules the initramfs loads to find the root disk. Debian's default (MODULES=most)
# makes a 36 MB initramfs that takes seconds to unpack and probe under emulation.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
SERVICE_INSTANCE_USER = "manila"  # Manila's service_instance_user
GUEST_HOSTNAME = "manila-service-instance"

# Run by mmdebstrap after the essential packages, before the kernel's postinst builds the
# initramfs: `sh initramfs.sh <rootfs>`.
_INITRAMFS_SCRIPT = r"""set -eu
root="$1"
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/usr/share/initramfs-tools/modules.d"
echo MODULES=list > "$root/etc/initramfs-tools/conf.d/manila-dhss-test.conf"
printf '%s\n' @MODULES@ > "$root/usr/share/initramfs-tools/modules.d/manila-dhss-test.conf"
"""

# Run inside mmdebstrap's customize hook as `sh customize.sh <rootfs> <public key file>`.
# Everything here is part of the recipe hash.
_CUSTOMIZE_SCRIPT = r"""set -eu
root="$1"
pubkey="$2"

echo "@HOSTNAME@" > "$root/etc/hostname"
cat > "$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	@HOSTNAME@
::1	localhost ip6-localhost ip6-loopback
EOF
cat > "$root/etc/fstab" <<'EOF'
/dev/vda	/	ext4	rw,errors=remount-ro	0	1
EOF
cat > "$root/etc/network/interfaces" <<'EOF'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
EOF

# The service instance user, with passwordless sudo, like Manila's service image.
chroot "$root" useradd --create-home --shell /bin/bash @USER@
echo '@USER@ ALL=(ALL) NOPASSWD:ALL' > "$root/etc/sudoers.d/@USER@"
chmod 0440 "$root/etc/sudoers.d/@USER@"
for home in /root /home/@USER@; do
    install -d -m 0700 "$root$home/.ssh"
    install -m 0600 "$pubkey" "$root$home/.ssh/authorized_keys"
done
chroot "$root" chown -R @USER@:@USER@ /home/@USER@/.ssh

# Many parallel ssh sessions (tests run ten at once; remote commands of a stack run in parallel).
cat > "$root/etc/ssh/sshd_config.d/manila-dhss-test.conf" <<'EOF'
MaxStartups 100
MaxSessions 100
UseDNS no
EOF

# Samba registry shares (what `net conf addshare` writes) are only served with
# `include = registry`; Manila's service image ships these lines.
cat > "$root/etc/samba/smb.conf" <<'EOF'
[global]
   workgroup = WORKGROUP
   server role = standalone server
   map to guest = Bad User
   log file = /var/log/samba/log.%m
   max log size = 1000
   include = registry
EOF

# Every ssh login ran the motd scripts (a second of emulated CPU each): not here.
sed -i -e 's/^session *optional *pam_motd/# &/' -e 's/^session *optional *pam_mail/# &/' \
    "$root/etc/pam.d/sshd"

# Nothing should wake up mid-test and take the 2 emulated CPUs or the dpkg lock, nor slow
# the boot with work the tests never use (nmbd: NetBIOS names; SMB here is port 445 only).
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    e2scrub_reap.service nmbd.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# cloud-init applies the user data the program gives the instance (host_keys.cloud_config).
# Only what that user data needs is kept, each of cloud-init's Python stages costing seconds
# of emulated CPU: the NoCloud datasource (the seed disk labelled cidata that the harness
# attaches, in place of Nova's metadata) and the init stage, whose `ssh` module writes the
# host keys (cloud-init.service runs before ssh.service). The config and final stages run
# nothing that user data asks for. Networking stays ifupdown's (above), and no default user
# is made: the image has `manila`.
cat > "$root/etc/cloud/cloud.cfg.d/99-manila-dhss-test.cfg" <<'EOF'
datasource_list: [NoCloud]
network: {config: disabled}
users: []
disable_root: false
cloud_init_modules: [ssh]
cloud_config_modules: []
cloud_final_modules: []
EOF
for unit in cloud-config.service cloud-final.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
"""


def _initramfs_script() -> str:
    return _INITRAMFS_SCRIPT.replace("@MODULES@", " ".join(INITRAMFS_MODULES))


def _customize_script() -> str:
    return _CUSTOMIZE_SCRIPT.replace("@HOSTNAME@", GUEST_HOSTNAME).replace(
        "@USER@", SERVICE_INSTANCE_USER
    )


class GuestError(RuntimeError):
    """The guest, qemu or the image build did not do what was asked."""


class GuestCommandError(subprocess.CalledProcessError):
    """A command run with ``Guest.ssh(..., check=True)`` exited non-zero."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}\n--- stdout ---\n{_tail(self.stdout)}"
            f"\n--- stderr ---\n{_tail(self.stderr)}"
        )


def _tail(text: str | None, lines: int = 40) -> str:
    if not text:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def missing_host_tools() -> dict[str, str]:
    """Programs the harness needs that are not on PATH, each with its Debian package."""
    return {tool: pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None}


def parse_size(size: str | int) -> int:
    """Bytes in a qemu-img style size: ``1G``, ``512M``, ``1024K``, ``4096`` (powers of 1024)."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", size, re.IGNORECASE)
    if not match:
        raise ValueError(f"size {size!r} is not a number with an optional K/M/G/T suffix")
    power = " KMGT".index(match.group(2).upper() or " ")
    return int(match.group(1)) << (10 * power)


def _run(argv: list[str], *, timeout: float = 600, what: str = "") -> str:
    proc = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise GuestError(
            f"{what or argv[0]} failed (exit {proc.returncode}): {shlex.join(argv)}\n"
            f"{_tail(proc.stdout)}\n{_tail(proc.stderr)}"
        )
    return proc.stdout


# --------------------------------------------------------------------------------------
# The image
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuestImage:
    """A built guest: boot ``kernel`` + ``initrd`` with ``rootfs`` as /dev/vda."""

    rootfs: Path
    kernel: Path
    initrd: Path
    ssh_key: Path  # private key (mode 600) accepted for root and the manila user


def default_cache_dir() -> Path:
    env = os.environ.get("DHSS_GUEST_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "manila-dhss" / "guest"


def image_recipe() -> dict[str, Any]:
    """Everything that decides what the image holds; its hash names the cache folder."""
    return {
        "version": IMAGE_RECIPE_VERSION,
        "suite": SUITE,
        "mirrors": list(MIRRORS),
        "variant": "minbase",
        "packages": list(GUEST_PACKAGES),
        "initramfs": _initramfs_script(),
        "customize": _customize_script(),
        "rootfs_size": ROOTFS_SIZE,
    }


def image_recipe_hash() -> str:
    blob = json.dumps(image_recipe(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _image_in(folder: Path) -> GuestImage:
    return GuestImage(
        rootfs=folder / "rootfs.img",
        kernel=folder / "vmlinuz",
        initrd=folder / "initrd.img",
        ssh_key=folder / "ssh_key",
    )


def _image_complete(image: GuestImage) -> bool:
    return all(p.is_file() for p in (image.rootfs, image.kernel, image.initrd, image.ssh_key))


def build_guest_image(cache_dir: Path | None = None) -> GuestImage:
    """The cached guest image, built first if this recipe was never built here.

    Cached in ``<cache_dir>/bookworm-<recipe hash>``; ``cache_dir`` defaults to
    ``$DHSS_GUEST_CACHE`` or ``~/.cache/manila-dhss/guest``. The build runs in a temporary
    folder next to it that is renamed into place only when complete, under a file lock, so
    an interrupted or concurrent build never leaves (or uses) half an image.
    """
    cache = (cache_dir or default_cache_dir()).expanduser().resolve()
    cache.mkdir(parents=True, exist_ok=True)
    name = f"{SUITE}-{image_recipe_hash()}"
    final = cache / name
    image = _image_in(final)
    if _image_complete(image):
        return image
    missing = {t: p for t, p in missing_host_tools().items() if not t.startswith("qemu")}
    if missing:
        raise GuestError(
            f"cannot build the guest image: {', '.join(missing)} not found; "
            f"apt-get install {' '.join(sorted(set(missing.values())))}"
        )
    with open(cache / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build of the same recipe finishes first
        if _image_complete(image):
            return image
        if final.exists():  # never renamed half-built, so someone removed files: start over
            shutil.rmtree(final)
        for stale in cache.glob(f".{name}.building-*"):  # left by a killed build (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        started = time.monotonic()
        build = Path(tempfile.mkdtemp(prefix=f".{name}.building-", dir=cache))
        build.chmod(0o755)
        try:
            _build_into(build)
            build.rename(final)
        finally:
            if build.exists():
                shutil.rmtree(build, ignore_errors=True)
        print(
            f"guest image {final} built in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
    return image


def _build_into(build: Path) -> None:
    key = build / "ssh_key"
    _run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "manila-dhss-guest-test",
            "-f",
            str(key),
        ],
        what="ssh-keygen",
    )
    key.chmod(0o600)
    script = build / "customize.sh"
    script.write_text(_customize_script())
    initramfs = build / "initramfs.sh"
    initramfs.write_text(_initramfs_script())
    tree = build / "tree"
    hook = f'sh {shlex.quote(str(script))} "$1" {shlex.quote(str(key))}.pub'
    argv = [
        "mmdebstrap",
        "--mode=root",
        "--variant=minbase",
        "--format=directory",
        f"--include={','.join(GUEST_PACKAGES)}",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        f'--essential-hook=sh {shlex.quote(str(initramfs))} "$1"',
        f"--customize-hook={hook}",
        SUITE,
        str(tree),
        *MIRRORS,
    ]
    # mmdebstrap prints progress on stderr; keep it in a log for when it fails.
    log = build / "mmdebstrap.log"
    with open(log, "w") as out:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if proc.returncode != 0:
        raise GuestError(
            f"mmdebstrap failed (exit {proc.returncode}):\n{_tail(log.read_text(), 60)}"
        )
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    initrds = sorted((tree / "boot").glob("initrd.img-*"))
    if len(kernels) != 1 or len(initrds) != 1:
        raise GuestError(f"expected one kernel and one initrd in {tree}/boot: {kernels} {initrds}")
    shutil.copyfile(kernels[0], build / "vmlinuz")
    shutil.copyfile(initrds[0], build / "initrd.img")
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "root",
            "-d",
            str(tree),
            str(build / "rootfs.img"),
            ROOTFS_SIZE,
        ],
        what="mkfs.ext4 -d",
    )
    (build / "rootfs.img").chmod(0o444)  # booted with snapshot=on; nobody writes it
    shutil.rmtree(tree)


# --------------------------------------------------------------------------------------
# The host key and the seed that hands it over
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostKey:
    """An ed25519 SSH host key, in the two attributes pulumi_tls's ``PrivateKey`` gives."""

    private_key_openssh: str = field(repr=False)
    public_key_openssh: str
    """"ssh-ed25519 BASE64" and a newline, no comment: as pulumi_tls gives it."""

    @property
    def public(self) -> str:
        """ "TYPE BASE64", as ssh-keyscan and a known_hosts file show it."""
        return self.public_key_openssh.strip()


def generate_host_key(path: Path) -> HostKey:
    """A new host key, as the program makes one (``tls.PrivateKey``, algorithm ED25519).

    ``ssh-keygen -t ed25519`` writes the same OpenSSH private key format; the empty comment
    matches pulumi_tls's keys, which have none. The files stay at ``path`` and ``path.pub``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
        what="ssh-keygen",
    )
    public = " ".join(Path(f"{path}.pub").read_text().split()[:2])
    return HostKey(private_key_openssh=path.read_text(), public_key_openssh=public + "\n")


def write_nocloud_seed(path: Path, user_data: str, *, instance_id: str) -> Path:
    """A cloud-init NoCloud seed: an iso9660 image labelled ``cidata`` with these files.

    ``user-data`` holds ``user_data`` byte for byte; ``meta-data`` the instance id (a new one
    makes cloud-init treat the guest as a new instance and run its per-instance modules,
    ``ssh`` among them) and the hostname. Nova hands a config drive over the same way: a
    read-only iso9660 CD-ROM.
    """
    with tempfile.TemporaryDirectory(prefix="dhss-seed-") as tmp:
        folder = Path(tmp)
        (folder / "user-data").write_bytes(user_data.encode())
        (folder / "meta-data").write_text(
            f"instance-id: {instance_id}\nlocal-hostname: {GUEST_HOSTNAME}\n"
        )
        _run(
            ["genisoimage", "-quiet", "-output", str(path), "-volid", "cidata",
             "-joliet", "-rock", str(folder / "user-data"), str(folder / "meta-data")],
            what="genisoimage (NoCloud seed)",
        )  # fmt: skip
    return path


# --------------------------------------------------------------------------------------
# QMP
# --------------------------------------------------------------------------------------


class QMP:
    """A QMP client on qemu's unix socket: one lock, replies matched by id, events kept."""

    def __init__(self, path: Path, *, timeout: float = 30) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(path))
        deadline = time.monotonic() + timeout
        greeting = self._read(deadline)
        if "QMP" not in greeting:
            raise GuestError(f"QMP greeting expected, got {greeting}")
        self.execute("qmp_capabilities")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        if self.path.parent.name.startswith("dhss-qmp-"):  # a short path made for a long workdir
            shutil.rmtree(self.path.parent, ignore_errors=True)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message from QMP in time")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise GuestError("QMP socket closed (qemu exited?)")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def _keep_event(self, message: dict[str, Any]) -> None:
        self.events.append(message)
        del self.events[:-1000]

    def execute(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float = 60
    ) -> Any:
        """Run one QMP command and return its ``return`` value; raise on ``error``."""
        with self._lock:
            self._next_id += 1
            request_id = f"dhss-{self._next_id}"
            request: dict[str, Any] = {"execute": command, "id": request_id}
            if arguments is not None:
                request["arguments"] = arguments
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            deadline = time.monotonic() + timeout
            while True:
                try:
                    message = self._read(deadline)
                except TimeoutError:
                    raise GuestError(f"QMP {command}: no reply within {timeout:.0f} s") from None
                if "event" in message:
                    self._keep_event(message)
                elif message.get("id") == request_id:
                    if "error" in message:
                        raise GuestError(f"QMP {command} {arguments}: {message['error']}")
                    return message.get("return")

    def wait_event(
        self,
        name: str,
        match: Callable[[dict[str, Any]], bool],
        *,
        timeout: float,
        what: str,
        since: float = 0,
    ) -> dict[str, Any]:
        """The first (kept or coming) event ``name`` whose data satisfies ``match``.

        ``since``: only an event qemu stamped at or after this ``time.time()``.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self.events:
                    stamp = event.get("timestamp", {})
                    at = stamp.get("seconds", 0) + stamp.get("microseconds", 0) / 1e6
                    if event["event"] == name and at >= since and match(event.get("data", {})):
                        self.events.remove(event)
                        return event
                try:
                    message = self._read(deadline)
                except TimeoutError:
                    raise GuestError(f"{what}: no {name} event within {timeout:.0f} s") from None
                if "event" in message:
                    self._keep_event(message)


# --------------------------------------------------------------------------------------
# The guest
# --------------------------------------------------------------------------------------

_SAFE_VOLUME_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass
class _Attachment:
    node: str  # blockdev node-name
    device: str  # qdev id
    serial: str


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(eq=False)
class Guest:
    """One booted guest. Create it with :meth:`Guest.boot`; end it with :meth:`shutdown`."""

    image: GuestImage
    workdir: Path
    ssh_port: int
    smb_port: int
    nfs_port: int
    process: subprocess.Popen[bytes]
    qmp: QMP
    host_key: HostKey
    """The host key the guest got from its seed's user data (the program's cloud-config)."""
    multiplex: bool = True
    _attached: dict[str, _Attachment] = field(default_factory=dict)
    _volumes_lock: threading.Lock = field(default_factory=threading.Lock)
    _masters: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _masters_lock: threading.Lock = field(default_factory=threading.Lock)
    _master_failed_at: dict[str, float] = field(default_factory=dict)
    _control_dir: Path | None = None

    # ---- boot and power ---------------------------------------------------------------

    @classmethod
    def boot(
        cls,
        image: GuestImage,
        workdir: Path,
        *,
        memory_mb: int = 1024,
        boot_timeout: float = 600,
        multiplex: bool = True,
        host_key: HostKey | None = None,
    ) -> Guest:
        """Boot a guest and return once ssh logs in; volumes and logs go in ``workdir``.

        The guest's SSH host key is ``host_key`` (default: a new one, in
        ``workdir/host_key``), handed over as the program hands it to the service instance:
        the user data is ``host_keys.cloud_config`` of it, byte for byte, on a NoCloud seed
        CD-ROM (``workdir/seed.iso``) that cloud-init applies before sshd starts. The harness's
        own ssh (:meth:`ssh`) does not check host keys; the tests that pin it do.

        ``multiplex``: run :meth:`ssh` commands as sessions of one kept ssh connection per
        user (the first login of a user after boot is a full one). Each command is still its
        own session with its own remote command string; only the key exchange (over a second
        under emulation) is saved.

        The guest dies with the thread that called this (qemu runs with a parent-death
        signal), so call it from a thread that lives as long as the guest, e.g. pytest's.
        """
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        missing = {t: p for t, p in missing_host_tools().items() if t.startswith(("qemu", "ssh"))}
        if missing:
            raise GuestError(
                f"cannot boot the guest: {', '.join(missing)} not found; "
                f"apt-get install {' '.join(sorted(set(missing.values())))}"
            )
        if host_key is None:
            (workdir / "host_key").unlink(missing_ok=True)
            (workdir / "host_key.pub").unlink(missing_ok=True)
            host_key = generate_host_key(workdir / "host_key")
        seed = write_nocloud_seed(
            workdir / "seed.iso",
            cloud_config(host_key.private_key_openssh, host_key.public_key_openssh),
            instance_id=f"i-{os.urandom(8).hex()}",
        )
        for attempt in range(3):
            guest = cls._start(
                image, workdir, memory_mb, _free_ports(3), seed=seed, host_key=host_key
            )
            if guest is not None:
                guest.multiplex = multiplex
                break
            # Another process took one of the ports between our check and qemu's bind.
            print(
                f"qemu could not forward its ports (try {attempt + 1}); new ports", file=sys.stderr
            )
        else:
            raise GuestError(f"qemu could not forward host ports: {_tail(cls._qemu_log(workdir))}")
        try:
            started = time.monotonic()
            guest._wait_for_ssh(timeout=boot_timeout, what="ssh login after boot")
            print(
                f"guest booted, ssh answered in {time.monotonic() - started:.0f} s", file=sys.stderr
            )
        except BaseException:
            guest._kill()
            raise
        return guest

    @staticmethod
    def _qemu_log(workdir: Path) -> str:
        with contextlib.suppress(OSError):
            return (workdir / "qemu.log").read_text(errors="replace")
        return ""

    @classmethod
    def _start(
        cls,
        image: GuestImage,
        workdir: Path,
        memory_mb: int,
        ports: list[int],
        *,
        seed: Path,
        host_key: HostKey,
    ) -> Guest | None:
        ssh_port, smb_port, nfs_port = ports
        qmp_path = workdir / "qmp.sock"
        if len(str(qmp_path)) > 100:  # unix socket paths are limited to 108 bytes
            qmp_path = Path(tempfile.mkdtemp(prefix="dhss-qmp-")) / "qmp.sock"
        qmp_path.unlink(missing_ok=True)
        console = workdir / "console.log"
        forwards = ",".join(
            f"hostfwd=tcp:127.0.0.1:{host}-:{guest}"
            for host, guest in ((ssh_port, 22), (smb_port, 445), (nfs_port, 2049))
        )
        argv = [
            "qemu-system-x86_64",
            "-name", "manila-dhss-guest",
            "-machine", "pc",
            "-accel", "tcg,thread=multi",
            "-cpu", QEMU_CPU,
            "-smp", str(QEMU_SMP),
            "-m", str(memory_mb),
            "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", f"file:{console}",
            "-kernel", str(image.kernel),
            "-initrd", str(image.initrd),
            "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 mitigations=off",
            "-drive", f"file={image.rootfs},format=raw,if=virtio,snapshot=on,readonly=off",
            # The seed on the board's IDE, not virtio: the volumes keep vdb, vdc...
            "-drive", f"file={seed},format=raw,if=ide,media=cdrom,readonly=on",
            "-netdev", f"user,id=n0,{forwards}",
            "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
            "-qmp", f"unix:{qmp_path},server=on,wait=off",
        ]  # fmt: skip
        setpriv = shutil.which("setpriv")
        if setpriv:  # qemu must not outlive a killed test run
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        env = dict(os.environ, TMPDIR=str(workdir))  # snapshot=on writes its overlay there
        with open(workdir / "qemu.log", "wb") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + 60
        while not qmp_path.exists():
            if process.poll() is not None:
                if "hostfwd" in cls._qemu_log(workdir) or "forwarding" in cls._qemu_log(workdir):
                    return None
                raise GuestError(
                    f"qemu exited at start (exit {process.returncode}):\n"
                    f"{_tail(cls._qemu_log(workdir))}"
                )
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise GuestError("qemu did not open its QMP socket within 60 s")
            time.sleep(0.05)
        try:
            qmp = QMP(qmp_path)
        except BaseException:
            process.kill()
            process.wait()
            raise
        return cls(
            image=image,
            workdir=workdir,
            ssh_port=ssh_port,
            smb_port=smb_port,
            nfs_port=nfs_port,
            process=process,
            qmp=qmp,
            host_key=host_key,
        )

    def console_tail(self, lines: int = 40) -> str:
        """The last lines of the guest's serial console, without terminal escapes."""
        with contextlib.suppress(OSError):
            text = (self.workdir / "console.log").read_text(errors="replace")
            text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\r", "", text)
            return _tail("\n".join(line for line in text.splitlines() if line.strip()), lines)
        return "(no console log)"

    def _alive(self) -> None:
        if self.process.poll() is not None:
            raise GuestError(
                f"qemu exited (code {self.process.returncode})\n"
                f"{_tail(self._qemu_log(self.workdir))}"
                f"\n--- console ---\n{self.console_tail()}"
            )

    def _wait_for_ssh(
        self, *, timeout: float, what: str, accept: Callable[[str], bool] = lambda _: True
    ) -> None:
        """Poll a real ssh login (running ``cat boot_id``) until ``accept(boot_id)``."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            self._alive()
            try:
                result = self.ssh(
                    "cat /proc/sys/kernel/random/boot_id",
                    timeout=90,
                    connect_timeout=30,  # sshd can take seconds to answer on a busy host
                    multiplex=False,
                )
                if result.returncode == 0 and accept(result.stdout.strip()):
                    return
                last = (result.stderr or result.stdout).strip()
            except subprocess.TimeoutExpired:
                last = "ssh timed out"
            if time.monotonic() > deadline:
                raise GuestError(
                    f"{what}: no ssh login within {timeout:.0f} s (last: {last})\n"
                    f"--- console tail ({self.workdir / 'console.log'}) ---\n{self.console_tail()}"
                )
            time.sleep(1)

    def boot_id(self) -> str:
        return self.ssh("cat /proc/sys/kernel/random/boot_id", check=True).stdout.strip()

    def reboot(self, *, timeout: float = 600) -> None:
        """Reboot the guest as an operator would (``systemctl reboot``) and wait for ssh.

        Hot-plugged volumes stay attached. If the guest has not reset itself within half of
        ``timeout`` (a shutdown job stuck on a busy mount, say), it is reset over QMP.
        """
        before = self.boot_id()
        self._stop_masters()  # their connections die with this boot
        asked = time.time()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.ssh("sudo -n systemctl reboot", timeout=60, multiplex=False)
        try:
            self.qmp.wait_event(
                "RESET",
                lambda _: True,
                timeout=timeout / 2,
                what="reboot (systemctl reboot)",
                since=asked,
            )
        except GuestError as error:
            print(f"{error}; resetting the guest over QMP", file=sys.stderr)
            self.qmp.execute("system_reset")
        self._wait_for_ssh(timeout=timeout / 2, what="reboot", accept=lambda new: new != before)

    def shutdown(self, *, timeout: float = 180) -> None:
        """Power the guest off; kill our qemu (only its pid) if it does not exit in time."""
        self._stop_masters()
        if self.process.poll() is None:
            try:
                asked = self.ssh("sudo -n systemctl poweroff", timeout=60, multiplex=False)
                answered = asked.returncode in (0, 255)  # 255: sshd went down under us
            except subprocess.TimeoutExpired:
                answered = False
            if not answered:  # press the (ACPI) power button instead
                with contextlib.suppress(GuestError, OSError):
                    self.qmp.execute("system_powerdown", timeout=10)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"guest did not power off in {timeout:.0f} s; quitting qemu", file=sys.stderr)
                with contextlib.suppress(GuestError, OSError):
                    self.qmp.execute("quit", timeout=10)
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._kill()
        self.qmp.close()

    def _kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # our own Popen: exactly the pid we started
        self.process.wait()
        self._stop_masters()
        self.qmp.close()

    def __enter__(self) -> Guest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # ---- commands ---------------------------------------------------------------------

    def ssh_argv(
        self,
        *,
        user: str = SERVICE_INSTANCE_USER,
        connect_timeout: float = 60,
        control_path: Path | None = None,
    ) -> list[str]:
        """The ssh command line up to the destination (append the remote command)."""
        return [
            "ssh",
            "-F", "/dev/null",
            "-T",
            "-i", str(self.image.ssh_key),
            "-p", str(self.ssh_port),
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR",
            "-o", f"ConnectTimeout={connect_timeout:.0f}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=8",
            "-o", "ControlMaster=no",
            "-o", f"ControlPath={control_path or 'none'}",
            "--",
            f"{user}@127.0.0.1",
        ]  # fmt: skip

    def ssh(
        self,
        command: str,
        *,
        user: str = SERVICE_INSTANCE_USER,
        input: str | bytes | None = None,  # subprocess's name for it
        timeout: float = 300,
        check: bool = False,
        connect_timeout: float = 60,
        multiplex: bool | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on the guest as ``user``, as the one remote command string.

        Like Pulumi's ``remote.Command``: no PTY, no agent, host key not checked; the remote
        login shell runs the string as given. Exit code 255 means ssh itself failed.
        Thread-safe. Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds, and
        :class:`GuestCommandError` (a ``CalledProcessError``) on a non-zero exit if ``check``.
        ``multiplex`` (default: as booted) runs it over the kept connection of ``user``.
        """
        use_master = self.multiplex if multiplex is None else multiplex
        control_path = self._master(user) if use_master else None
        argv = [
            *self.ssh_argv(user=user, connect_timeout=connect_timeout, control_path=control_path),
            command,
        ]
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            argv,
            input=data,
            stdin=subprocess.DEVNULL if data is None else None,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        result = subprocess.CompletedProcess(
            argv,
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise GuestCommandError(result.returncode, command, result.stdout, result.stderr)
        return result

    def _master(self, user: str) -> Path | None:
        """The control socket of a kept connection for ``user``, started if needed.

        None if it cannot be had (the caller then makes a connection of its own; so does
        ssh when a master dies under it, e.g. across a reboot).
        """
        with self._masters_lock:
            if self.process.poll() is not None:
                return None
            if self._control_dir is None:
                # Short: ssh refuses control paths near the 108-byte unix socket limit.
                self._control_dir = Path(tempfile.mkdtemp(prefix="dhss-ssh-"))
            path = self._control_dir / user
            master = self._masters.get(user)
            if master is not None and master.poll() is None and path.exists():
                return path
            if master is not None:
                self._end_master(master)
                del self._masters[user]
            if time.monotonic() - self._master_failed_at.get(user, -1e9) < 60:
                return None  # failed just now: let callers connect on their own for a while
            path.unlink(missing_ok=True)
            argv = self.ssh_argv(user=user, connect_timeout=60, control_path=path)
            argv[argv.index("ControlMaster=no")] = "ControlMaster=yes"
            master = subprocess.Popen(
                [*argv[:-2], "-N", *argv[-2:]],  # -N: no remote command, just the connection
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._masters[user] = master
            deadline = time.monotonic() + 120
            while not path.exists():
                if master.poll() is not None or time.monotonic() > deadline:
                    self._end_master(master)
                    del self._masters[user]
                    self._master_failed_at[user] = time.monotonic()
                    print(
                        f"no kept ssh connection for {user}; connecting per command",
                        file=sys.stderr,
                    )
                    return None
                time.sleep(0.05)
            return path

    @staticmethod
    def _end_master(master: subprocess.Popen[bytes]) -> None:
        if master.poll() is None:
            master.terminate()  # our own Popen: exactly the ssh we started
            try:
                master.wait(timeout=10)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait()

    def _stop_masters(self) -> None:
        with self._masters_lock:
            for master in self._masters.values():
                self._end_master(master)
            self._masters.clear()
            self._master_failed_at.clear()
            if self._control_dir is not None:
                shutil.rmtree(self._control_dir, ignore_errors=True)
                self._control_dir = None

    # ---- volumes ----------------------------------------------------------------------

    def volume_path(self, volume_id: str) -> Path:
        """The qcow2 file that holds volume ``volume_id`` (it may not exist yet)."""
        if _SAFE_VOLUME_ID.fullmatch(volume_id):
            return self.workdir / f"volume-{volume_id}.qcow2"
        return self.workdir / f"volume-{hashlib.sha256(volume_id.encode()).hexdigest()[:32]}.qcow2"

    @staticmethod
    def by_id_path(volume_id: str) -> str:
        """Where the guest's udev links the disk of ``volume_id`` (serial = id[:20])."""
        return f"/dev/disk/by-id/virtio-{volume_id[:20]}"

    def attached_volumes(self) -> list[str]:
        with self._volumes_lock:
            return list(self._attached)

    def attach_volume(
        self,
        volume_id: str,
        size: str = "1G",
        *,
        wait: bool = True,
        read_errors_at: Sequence[int] = (),
    ) -> Path:
        """Hot-plug volume ``volume_id`` as Nova does: virtio-blk, serial = id[:20].

        Creates the qcow2 (``size``) if it does not exist; an existing one keeps its data
        and its size. With ``wait`` returns once the guest has ``/dev/disk/by-id/virtio-<id[:20]>``.
        Returns the qcow2's path.

        ``read_errors_at``: byte offsets in the volume whose every read fails with EIO for as
        long as this attachment lasts, like a disk with bad sectors or a storage path that
        fails reads: qemu's ``blkdebug`` driver sits between the qcow2 and its file. The
        offsets must hold data already (qemu never reads an unallocated cluster).
        """
        self._alive()
        path = self.volume_path(volume_id)
        if not path.exists():
            _run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(parse_size(size))])
        file_node: dict[str, Any] = {"driver": "file", "filename": str(path)}
        if read_errors_at:
            file_node = {
                "driver": "blkdebug",
                "image": file_node,
                "inject-error": [
                    # Every read of the file that covers this sector fails (the rule is armed
                    # by the first data read of the qcow2 driver, and stays armed).
                    {"event": "read_aio", "iotype": "read", "errno": errno.EIO, "sector": s}
                    for s in _file_sectors(path, read_errors_at)
                ],
            }
        digest = hashlib.sha256(volume_id.encode()).hexdigest()[:20]
        attachment = _Attachment(
            node=f"vol-{digest}", device=f"disk-{digest}", serial=volume_id[:20]
        )
        with self._volumes_lock:
            if volume_id in self._attached:
                raise GuestError(f"volume {volume_id} is already attached")
            self._attached[volume_id] = attachment
        try:
            self.qmp.execute(
                "blockdev-add",
                {
                    "driver": "qcow2",
                    "node-name": attachment.node,
                    "discard": "unmap",
                    "file": file_node,
                },
            )
            try:
                self.qmp.execute(
                    "device_add",
                    {
                        "driver": "virtio-blk-pci",
                        "drive": attachment.node,
                        "id": attachment.device,
                        "serial": attachment.serial,
                    },
                )
            except GuestError:
                self.qmp.execute("blockdev-del", {"node-name": attachment.node})
                raise
        except BaseException:
            with self._volumes_lock:
                del self._attached[volume_id]
            raise
        if wait:
            self._wait_in_guest(
                f"-e {self.by_id_path(volume_id)}", f"{self.by_id_path(volume_id)} to appear"
            )
        return path

    def _wait_in_guest(self, test: str, what: str, timeout: float = 60) -> None:
        """Poll a ``test`` expression in the guest (one ssh session) until true."""
        script = (
            f"end=$((SECONDS + {int(timeout)})); until [ {test} ]; do "
            "if [ $SECONDS -ge $end ]; then exit 1; fi; sleep 0.1; done"
        )
        result = self.ssh(script, timeout=timeout + 60)
        if result.returncode != 0:
            raise GuestError(
                f"waited {timeout:.0f} s in the guest for {what}; it did not happen "
                f"(exit {result.returncode}: {result.stderr.strip()})\n"
                f"--- console tail ---\n{self.console_tail(15)}"
            )

    def detach_volume(self, volume_id: str, *, wait: bool = True, timeout: float = 120) -> None:
        """Unplug volume ``volume_id`` (kept on the host for a later re-attach).

        Waits for qemu's DEVICE_DELETED (the guest let go of the disk) before removing the
        block node; with ``wait`` also until the guest's by-id link is gone. The unplug
        request is sent again every 20 s: a guest still busy with the plug ignores it.
        """
        with self._volumes_lock:
            attachment = self._attached.get(volume_id)
        if attachment is None:
            raise GuestError(f"volume {volume_id} is not attached")
        self._alive()
        deadline = time.monotonic() + timeout
        self.qmp.execute("device_del", {"id": attachment.device})
        while True:
            try:
                self.qmp.wait_event(
                    "DEVICE_DELETED",
                    lambda data: data.get("device") == attachment.device,
                    timeout=min(20, max(1, deadline - time.monotonic())),
                    what=f"detach of volume {volume_id}",
                )
                break
            except GuestError:
                self._alive()
                if time.monotonic() >= deadline:
                    raise GuestError(
                        f"detach of volume {volume_id}: the guest did not release the disk "
                        f"(no DEVICE_DELETED for {attachment.device}) within {timeout:.0f} s\n"
                        f"--- console tail ---\n{self.console_tail(15)}"
                    ) from None
            with contextlib.suppress(GuestError):  # e.g. gone meanwhile: the event will say
                self.qmp.execute("device_del", {"id": attachment.device})
        self.qmp.execute("blockdev-del", {"node-name": attachment.node})
        with self._volumes_lock:
            del self._attached[volume_id]
        if wait:
            self._wait_in_guest(
                f"! -e {self.by_id_path(volume_id)}", f"{self.by_id_path(volume_id)} to go"
            )

    def resize_volume(self, volume_id: str, size: str, *, wait: bool = True) -> None:
        """Grow volume ``volume_id`` to ``size`` (Cinder's extend; online when attached).

        With ``wait`` on an attached volume, returns once the guest sees the new size.
        """
        new_size = parse_size(size)
        with self._volumes_lock:
            attachment = self._attached.get(volume_id)
        if attachment is None:
            _run(["qemu-img", "resize", "-q", str(self.volume_path(volume_id)), str(new_size)])
            return
        self.qmp.execute("block_resize", {"node-name": attachment.node, "size": new_size})
        if wait:
            device = self.by_id_path(volume_id)
            self._wait_in_guest(
                f'"$(sudo -n blockdev --getsize64 {device})" = {new_size}',
                f"{device} to grow to {new_size} bytes",
            )


def _file_sectors(path: Path, offsets: Sequence[int]) -> list[int]:
    """The 512-byte sectors of the qcow2 file ``path`` that hold these volume offsets."""
    extents = json.loads(
        _run(["qemu-img", "map", "-U", "--output=json", str(path)], what="qemu-img map")
    )
    sectors = []
    for offset in offsets:
        for extent in extents:
            start, length = extent["start"], extent["length"]
            if start <= offset < start + length and extent.get("data") and "offset" in extent:
                sectors.append((extent["offset"] + offset - start) // 512)
                break
        else:
            raise GuestError(
                f"{path}: byte {offset} of the volume holds no data, so qemu never reads it "
                "from the file and no read error can be injected there"
            )
    return sectors


def volume_sha256(path: Path) -> str:
    """SHA-256 of a volume's virtual disk contents (independent of qcow2 allocation).

    Read with ``qemu-img convert -U``; detach the volume (or ``sync`` in the guest) first
    for a settled answer. Holes and zeroed blocks hash alike, so the digest depends only
    on the bytes the guest would read.
    """
    chunk = 1 << 20
    zero_digest = hashlib.sha256(bytes(chunk)).digest()
    with tempfile.TemporaryDirectory(prefix="dhss-volume-", dir=path.parent) as tmp:
        raw = Path(tmp) / "disk.raw"
        _run(
            ["qemu-img", "convert", "-U", "-O", "raw", str(path), str(raw)], what="qemu-img convert"
        )
        total = hashlib.sha256()
        size = raw.stat().st_size
        with open(raw, "rb") as disk:
            fd = disk.fileno()
            for start in range(0, size, chunk):
                length = min(chunk, size - start)
                try:
                    has_data = os.lseek(fd, start, os.SEEK_DATA) < start + length
                except OSError as error:
                    if error.errno != errno.ENXIO:
                        raise
                    has_data = False  # no data from here to the end
                if has_data or length != chunk:
                    disk.seek(start)
                    total.update(hashlib.sha256(disk.read(length)).digest())
                else:
                    total.update(zero_digest)
        total.update(str(size).encode())
        return total.hexdigest()
