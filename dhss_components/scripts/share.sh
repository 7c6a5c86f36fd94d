#!/bin/bash
# share.sh: make one Cinder volume a mounted, exported share on the service instance, or undo it.
#
# Runs as root on the service instance (the Share component sends it through
# `sudo -n bash -s -- ensure|delete ...` with the script itself on stdin). It does what Manila's
# generic driver does for a share (mkfs, mount, fstab, exportfs / net conf), but:
#   * the volume is found by its serial (/dev/disk/by-id/virtio-<volume id[:20]>), never by a
#     /dev/vdX name that Nova guessed;
#   * mkfs runs only on positive evidence of a blank volume: the device has the volume's size,
#     its first and last MiB read back (O_DIRECT, past the page cache) and are all zero or hold
#     no signature. A read or probe error stops the script before anything is changed;
#   * access is cut first and granted last: a removed rule is gone before the volume is touched,
#     an export or Samba share exists only while the volume is mounted under it, and a resize
#     comes after the rules, so a stalled extend never delays a removed client's loss of access;
#   * delete never detaches a busy filesystem (no umount -l): it names what holds it and changes
#     nothing, so the share stays exported and mounted and Pulumi stops before Nova's detach;
#   * every step is safe to cut at any instant (SIGKILL, reboot, lost ssh) and to run again;
#   * locks live in /run/manila-dhss and state in /var/lib/manila-dhss, directories of root's
#     own, so no local user can plant a symlink for this script to follow.
# "delete" unexports and unmounts; it never touches the data on the volume.
#
# Every step logs to stderr as "share <name>: ...". Because bash reads this script from stdin,
# everything is a function and `main "$@"` is the last line; commands get </dev/null so that
# none of them can read stdin.
set -Eeuo pipefail

readonly NAME_PATTERN='^[a-z0-9][a-z0-9_-]{0,62}$'
readonly VOLUME_ID_PATTERN='^[A-Za-z0-9][A-Za-z0-9_-]*$'
readonly PATH_PATTERN='^/[A-Za-z0-9._/-]*$'
readonly CLIENT_PATTERN='^(rw|ro):[][0-9A-Fa-f.:/*]+$'
readonly NUMBER_PATTERN='^[1-9][0-9]*$'
# Samba's special section names (source3/param/loadparm.c, lib/param/loadparm.h: GLOBAL_NAME,
# GLOBAL_NAME2, HOMES_NAME, PRINTERS_NAME, compared case-insensitively): a share by one of these
# names would rewrite Samba's own configuration. (IPC$, ADMIN$ and print$ cannot match
# NAME_PATTERN.)
readonly SAMBA_RESERVED_NAMES=(global globals homes printers)

readonly RUN_DIR=/run/manila-dhss        # locks and scratch files; gone at reboot
readonly STATE_DIR=/var/lib/manila-dhss  # what must survive a reboot
# A filesystem made here whose share root still needs its first-mount chmod 777: one file per
# volume serial, holding the filesystem's UUID.
readonly NEW_FILESYSTEMS_DIR=$STATE_DIR/new-filesystems
readonly LOCK_TIMEOUT=600
readonly EXPORTS_DIR=/etc/exports.d
readonly ETAB=/var/lib/nfs/etab # what exportfs last gave mountd, i.e. what NFS serves
# One client of an exports(5) line as this script writes it, or of ETAB: path, client, rw|ro.
readonly EXPORTS_ENTRY='^([^[:space:]]+)[[:space:]]+([^[:space:](]+)\((r[wo])[,)]'
readonly MIB=1048576
readonly GIB=1073741824
# An /etc/fstab entry (not a comment); BASH_REMATCH[1] is its mount point.
readonly FSTAB_ENTRY='^[[:space:]]*[^#[:space:]][^[:space:]]*[[:space:]]+([^[:space:]]+)'
# check: a share's filesystem this full (blocks or inodes, in percent) is reported as drift.
readonly FULL_PERCENT=95
# check: how long it waits for an ensure or delete of the same share to finish.
readonly CHECK_LOCK_TIMEOUT=120

ACTION=""
NAME=""
VOLUME_ID=""
PROTOCOL=""
MOUNT_ROOT=/shares
FSTYPE=ext4
SIZE_GIB=""
DEVICE_TIMEOUT=120
CLIENTS=()

MOUNT_PATH=""
DEVICE=""          # /dev/disk/by-id/virtio-<serial>: the only name used to act on the volume
DEVICE_NUMBER=""   # major:minor of that device, to compare with what is mounted
KERNEL_NAME=""     # the kernel's name for it today (vdb...), only to read /sys/class/block
FS_UUID=""
TEMP_FILES=()
declare -A OWN_DIRECTORIES=() # own_directory's checks passed in this run

log() {
    printf 'share %s: %s\n' "${NAME:-?}" "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

usage() {
    cat >&2 <<EOF
usage: share.sh ensure --name NAME --volume-id ID --protocol nfs|cifs --size-gib N
                       [--mount-root DIR] [--fstype ext4|ext3] [--device-timeout SECONDS]
                       [--client rw|ro:ADDRESS]...
       share.sh check  (ensure's arguments)
       share.sh delete --name NAME [--protocol nfs|cifs] [--mount-root DIR]

ensure: cut the access that the clients no longer have, find the volume by its serial, make a
        filesystem only if the volume is provably blank, mount it on MOUNT_ROOT/NAME (and in
        /etc/fstab), export it to exactly the given clients (NFS: Manila's client forms; CIFS:
        addresses), then grow the filesystem to the volume.
check:  change nothing; compare this server with what ensure would make of it: the volume
        attached (its by-id link, no waiting), its filesystem, mounted on MOUNT_ROOT/NAME from
        that volume and read-write, its /etc/fstab line, the filesystem grown to the volume
        and the volume at --size-gib, the export (NFS: the share's exports file, what mountd
        serves in /var/lib/nfs/etab, nfs-kernel-server running; CIFS: the Samba registry
        share, every parameter ensure sets and no other, smbd running), every client at its
        level and no other, and room left: ${FULL_PERCENT}% or more of the blocks or of the
        inodes used is reported. Prints "drift NAME ASPECT: WHAT" per difference, or "ok NAME".
        Exit status 0 as declared, 3 drift, 1 it cannot tell (the volume is not attached, a
        command failed: the reason is on stderr).
delete: refuse while anything uses the share; else unexport, drop the fstab line, unmount.
        The data on the volume is left as it is.
EOF
}

usage_error() {
    log "ERROR: $*"
    usage
    exit 2
}

on_error() {
    local status=$1 line=$2 command=$3
    if [[ $ACTION == check ]]; then
        # check's statuses mean something (3 is drift): whatever fails, it could not tell.
        log "ERROR: cannot check: '$command' failed with exit status $status (share.sh line" \
            "$line); nothing was changed."
        exit 1
    fi
    log "ERROR: '$command' failed with exit status $status (share.sh line $line);" \
        "see the messages above. Every step is safe to re-run once the cause is fixed."
}

cleanup() {
    if ((${#TEMP_FILES[@]})); then
        rm -f -- "${TEMP_FILES[@]}"
    fi
}

# checkpoint NAME: a boundary between two steps that change the guest. The guest tests set
# DHSS_SHARE_STOP_AT=ACTION:NAME to kill the script right here (SIGKILL, as a crash, a reboot
# or a lost ssh session would) and prove that running it again finishes the job. Otherwise it
# does nothing: the tests run the same code as production.
checkpoint() {
    if [[ ${DHSS_SHARE_STOP_AT-} == "$ACTION:$1" ]]; then
        log "killed at $ACTION:$1 (DHSS_SHARE_STOP_AT)"
        kill -KILL "$$"
    fi
}

# --- arguments ----------------------------------------------------------------------------

parse_args() {
    ACTION=${1-}
    case $ACTION in
        ensure | check | delete) shift ;;
        -h | --help) usage; exit 0 ;;
        "") usage_error "missing action: the first argument must be 'ensure', 'check' or 'delete'" ;;
        *) usage_error "unknown action '$ACTION': the first argument must be 'ensure', 'check'" \
            "or 'delete'" ;;
    esac
    while (($#)); do
        case $1 in
            -h | --help) usage; exit 0 ;;
            --name | --volume-id | --protocol | --mount-root | --fstype | --size-gib | \
                --device-timeout | --client)
                (($# >= 2)) || usage_error "option $1 needs a value"
                case $1 in
                    --name) NAME=$2 ;;
                    --volume-id) VOLUME_ID=$2 ;;
                    --protocol) PROTOCOL=${2,,} ;;
                    --mount-root) MOUNT_ROOT=$2 ;;
                    --fstype) FSTYPE=$2 ;;
                    --size-gib) SIZE_GIB=$2 ;;
                    --device-timeout) DEVICE_TIMEOUT=$2 ;;
                    --client) CLIENTS+=("$2") ;;
                esac
                shift 2
                ;;
            *) usage_error "unknown argument '$1'" ;;
        esac
    done
    validate_args
}

validate_args() {
    [[ -n $NAME ]] || usage_error "--name is required"
    [[ $NAME =~ $NAME_PATTERN ]] ||
        usage_error "invalid --name '$NAME': use 1-63 of a-z 0-9 _ -, starting with a letter or digit"
    [[ $MOUNT_ROOT =~ $PATH_PATTERN && $MOUNT_ROOT != / ]] ||
        usage_error "invalid --mount-root '$MOUNT_ROOT': give an absolute directory such as /shares"
    MOUNT_ROOT=${MOUNT_ROOT%/}
    # Normalised, as the config makes it: the kernel spells a mount point so, and a . or ..
    # here would pass for a symlink (refuse_resolved_mount_root) or another path.
    [[ $MOUNT_ROOT/ != *//* && $MOUNT_ROOT/ != */./* && $MOUNT_ROOT/ != */../* ]] ||
        usage_error "invalid --mount-root '$MOUNT_ROOT': give a normalised path, without" \
            "'.', '..' or '//' (share_mount_path such as /shares)"
    MOUNT_PATH=$MOUNT_ROOT/$NAME
    if [[ -n $PROTOCOL && $PROTOCOL != nfs && $PROTOCOL != cifs ]]; then
        usage_error "invalid --protocol '$PROTOCOL': use nfs or cifs"
    fi
    [[ $ACTION == ensure || $ACTION == check ]] || return 0

    [[ -n $VOLUME_ID ]] || usage_error "--volume-id is required"
    [[ $VOLUME_ID =~ $VOLUME_ID_PATTERN ]] ||
        usage_error "invalid --volume-id '$VOLUME_ID': give the Cinder volume id"
    [[ -n $PROTOCOL ]] || usage_error "--protocol is required"
    [[ -n $SIZE_GIB ]] || usage_error "--size-gib is required"
    [[ $SIZE_GIB =~ $NUMBER_PATTERN ]] ||
        usage_error "invalid --size-gib '$SIZE_GIB': give the volume size in GiB"
    [[ $DEVICE_TIMEOUT =~ $NUMBER_PATTERN ]] ||
        usage_error "invalid --device-timeout '$DEVICE_TIMEOUT': give a number of seconds"
    [[ $FSTYPE == ext4 || $FSTYPE == ext3 ]] ||
        usage_error "invalid --fstype '$FSTYPE': use ext4 or ext3 (share_volume_fstype)"
    local client
    for client in ${CLIENTS[@]+"${CLIENTS[@]}"}; do
        [[ $client =~ $CLIENT_PATTERN ]] ||
            usage_error "invalid --client '$client': use rw:ADDRESS or ro:ADDRESS"
    done
    if [[ $PROTOCOL == cifs ]]; then
        ! samba_reserved_name ||
            usage_error "share name '$NAME' is one of Samba's special sections" \
                "(${SAMBA_RESERVED_NAMES[*]}, in any case): as a CIFS share it would rewrite" \
                "Samba's own configuration. Nothing was changed. Give the share another name."
        cifs_read_only
    fi
}

samba_reserved_name() {
    local reserved
    for reserved in "${SAMBA_RESERVED_NAMES[@]}"; do
        [[ ${NAME,,} != "$reserved" ]] || return 0
    done
    return 1
}

# --- directories, locks and files ---------------------------------------------------------

# own_directory DIR: make DIR (mode 0700) if it is missing, then insist that it is a real
# directory of root's own that nobody else can write: locks and state are only opened there,
# so no local user can plant a symlink for this script to follow or truncate.
own_directory() {
    local dir=$1 owner mode error
    # Once per run: a directory of root's own, writable by root only, stays so.
    [[ -z ${OWN_DIRECTORIES[$dir]+set} ]] || return 0
    if [[ ! -e $dir && ! -L $dir ]]; then
        error=$(mkdir -m 0700 -- "$dir" 2>&1) ||
            die "could not make $dir: ${error##*: }. Is the disk full? Free space" \
                "(df -h ${dir%/*}) and run again; nothing was changed."
    fi
    [[ -d $dir && ! -L $dir ]] ||
        die "$dir is not a directory but a symlink or a file; someone other than this script" \
            "made it. Nothing was changed. Look at 'ls -la $dir', remove it, and run again."
    read -r owner mode < <(stat -c '%u %a' -- "$dir")
    ((owner == 0 && (8#$mode & 8#022) == 0)) ||
        die "$dir must belong to root and be writable by root only; it has owner uid $owner" \
            "and mode $mode. Nothing was changed. Check who made it, then 'chown root:root $dir;" \
            "chmod 700 $dir' and run again."
    OWN_DIRECTORIES[$dir]=1
}

# with_lock NAME COMMAND...: run COMMAND while holding an exclusive flock on RUN_DIR/NAME.lock.
# If COMMAND fails, set -e ends the script and the lock goes with the process. (A program the
# script started keeps the lock open until it ends too, so a re-run after a kill waits for it.)
with_lock() {
    local file=$RUN_DIR/$1.lock fd
    shift
    exec {fd}<>"$file" # <>: create if missing, never truncate
    flock -w "$LOCK_TIMEOUT" "$fd" ||
        die "waited ${LOCK_TIMEOUT}s for $file: another share operation holds it." \
            "Find it with 'fuser -v $file' and run again when it is done."
    "$@"
    exec {fd}>&-
}

# with_read_lock NAME COMMAND...: run COMMAND holding a shared flock on RUN_DIR/NAME.lock, if
# that file exists, so that it waits for an ensure or delete under way instead of reading a
# half-done step. It creates neither the directory nor the file (check changes nothing; after
# a reboot, before any ensure, there is none and nothing to wait for).
with_read_lock() {
    local file=$RUN_DIR/$1.lock fd
    shift
    if [[ -e $RUN_DIR || -L $RUN_DIR ]]; then
        own_directory "$RUN_DIR" # (only inspects a directory that exists)
    fi
    if [[ -f $file ]]; then
        exec {fd}<"$file"
        flock -s -w "$CHECK_LOCK_TIMEOUT" "$fd" ||
            die "cannot check: waited ${CHECK_LOCK_TIMEOUT}s for $file: an ensure or delete of" \
                "this share holds it. Find it with 'fuser -v $file' and check again when it is done."
    fi
    "$@"
}

# new_temp_file TARGET: a temporary file next to TARGET (same filesystem, so mv is atomic), in
# TEMP; removed at exit if still there.
new_temp_file() {
    local target=$1
    TEMP=$(mktemp -- "${target%/*}/.${target##*/}.dhss.XXXXXX" 2>&1) ||
        die "could not write $target: ${TEMP##*: }. Is the disk full? Free space" \
            "(df -h ${target%/*}) and run again."
    TEMP_FILES+=("$TEMP")
}

# write_file TARGET CONTENT: put CONTENT in place of TARGET in one rename, on disk before the
# rename (a reset never leaves half a file), keeping TARGET's mode and owner. (Callers compare
# the contents first, in bash. Functions here report through variables, never through their
# exit status: set -e does not apply inside a function called as a condition.)
write_file() {
    local target=$1 content=$2 temp error
    new_temp_file "$target"
    temp=$TEMP
    if ! error=$({ printf '%s' "$content" >"$temp" && sync -- "$temp"; } 2>&1); then
        die "could not write $target: ${error##*: }. Is the disk full? Free space" \
            "(df -h ${target%/*}) and run again; nothing else was changed in this step."
    fi
    if [[ -f $target ]]; then
        chmod --reference="$target" -- "$temp"
        chown --reference="$target" -- "$temp"
    else
        chmod 644 -- "$temp"
    fi
    mv -f -- "$temp" "$target"
}

# --- block device -------------------------------------------------------------------------

# volume_link: the volume's udev link, by its virtio serial (the volume id cut to 20
# characters, as Nova passes it), in VOLUME_LINK.
volume_link() {
    VOLUME_LINK=/dev/disk/by-id/virtio-${VOLUME_ID:0:20}
}

# use_device: DEVICE is the volume's link, which exists: sets KERNEL_NAME and DEVICE_NUMBER.
use_device() {
    DEVICE=$VOLUME_LINK
    KERNEL_NAME=$(readlink -f -- "$DEVICE")
    KERNEL_NAME=${KERNEL_NAME##*/}
    read -r DEVICE_NUMBER </sys/class/block/"$KERNEL_NAME"/dev
}

find_device() {
    local by_id deadline=$((SECONDS + DEVICE_TIMEOUT)) remaining
    volume_link
    by_id=$VOLUME_LINK
    while [[ ! -b $by_id ]]; do
        remaining=$((deadline - SECONDS))
        if ((remaining <= 0)); then
            die "volume $VOLUME_ID did not appear as $by_id within ${DEVICE_TIMEOUT}s." \
                "Check that Cinder shows the volume attached to this server" \
                "(openstack server volume list), that the hypervisor passes the volume id as" \
                "the virtio serial, and 'ls -l /dev/disk/by-id' and 'dmesg' on this server."
        fi
        udevadm settle --timeout="$((remaining < 5 ? remaining : 5))" </dev/null || true
        [[ -b $by_id ]] || sleep 1
    done
    use_device
    log "found volume $VOLUME_ID at $DEVICE (now $KERNEL_NAME, $DEVICE_NUMBER)"
}

# device_size: sets DEVICE_SIZE to the size in bytes that the kernel sees now (it follows an
# online extend).
device_size() {
    local sectors
    read -r sectors </sys/class/block/"$KERNEL_NAME"/size
    DEVICE_SIZE=$((sectors * 512))
}

# wait_for_volume_size: waits (up to the device timeout) until the device is at least the
# share's size; Cinder's extend reaches the guest some time after Cinder says it is done.
wait_for_volume_size() {
    local wanted=$((SIZE_GIB * GIB)) deadline=$((SECONDS + DEVICE_TIMEOUT))
    device_size
    if ((DEVICE_SIZE < wanted)); then
        log "waiting up to ${DEVICE_TIMEOUT}s for $DEVICE to reach ${SIZE_GIB} GiB" \
            "(now $DEVICE_SIZE bytes)"
    fi
    while ((DEVICE_SIZE < wanted)); do
        ((SECONDS < deadline)) ||
            die "volume $VOLUME_ID ($DEVICE) is $DEVICE_SIZE bytes, smaller than the share's" \
                "size ${SIZE_GIB} GiB, after ${DEVICE_TIMEOUT}s. Check that the Cinder extend" \
                "finished (openstack volume show $VOLUME_ID) and that this server sees the new" \
                "size ('blockdev --getsize64 $DEVICE', 'dmesg'), then run again."
        sleep 1
        device_size
    done
}

# --- is the volume blank? -----------------------------------------------------------------

# probe_device: low-level probe (blkid -p reads the device itself). Sets PROBE_TYPE,
# PROBE_PTTYPE, PROBE_UUID, PROBE_STATUS (0 found, 2 nothing found *or a read error*, 8
# ambivalent, else an error) and PROBE_SUMMARY (what blkid said, on one line).
probe_device() {
    local output key value
    PROBE_TYPE="" PROBE_PTTYPE="" PROBE_UUID="" PROBE_STATUS=0 PROBE_SUMMARY=""
    output=$(blkid -p -o export "$DEVICE" </dev/null 2>&1) || PROBE_STATUS=$?
    while IFS='=' read -r key value; do
        case $key in
            DEVNAME | "") continue ;;
            TYPE) PROBE_TYPE=$value ;;
            PTTYPE) PROBE_PTTYPE=$value ;;
            UUID) PROBE_UUID=$value ;;
        esac
        PROBE_SUMMARY+="${PROBE_SUMMARY:+ }$key${value:+=$value}"
    done <<<"$output"
}

# read_region IMAGE OFFSET: copy one MiB of the device at OFFSET into IMAGE at the same
# offset, reading with O_DIRECT (the device itself, not what the page cache remembers).
# Dies, having changed nothing, if the read fails or comes back short.
read_region() {
    local image=$1 offset=$2 report
    if ! report=$(dd if="$DEVICE" of="$image" bs="$MIB" count=1 skip="$offset" seek="$offset" \
        iflag=direct,fullblock,skip_bytes oflag=seek_bytes conv=notrunc status=noxfer \
        </dev/null 2>&1) || [[ $report != *"1+0 records in"* ]]; then
        die "could not read volume $VOLUME_ID ($DEVICE) at byte $offset to check that it is" \
            "blank, so the probe failed: ${report//$'\n'/; }. Nothing was changed: this script" \
            "formats a volume only when it has read that it is blank. Check 'dmesg' and the" \
            "volume's backend; run again once the volume reads without errors."
    fi
}

# check_blank: called when blkid found no signature, which is also what it says when it could
# not read the device. Proves the volume blank or dies having changed nothing: its size is the
# share's size, its first and last MiB read back directly, and they are all zero or hold no
# signature that wipefs or blkid can find in them.
check_blank() {
    local wanted=$((SIZE_GIB * GIB)) image last zero=1 found status=0
    wait_for_volume_size
    ((DEVICE_SIZE == wanted)) ||
        die "refusing to format volume $VOLUME_ID ($DEVICE): it is $DEVICE_SIZE bytes, not the" \
            "share's ${SIZE_GIB} GiB ($wanted bytes), so it may not be the share's volume." \
            "Nothing was changed. Check the share's size and volume (openstack volume show" \
            "$VOLUME_ID) and run again."
    # The two regions go into a sparse file of the device's size in RUN_DIR (memory), so that
    # wipefs and blkid look at exactly the bytes read here, where a read cannot fail.
    image=$RUN_DIR/probe-${VOLUME_ID:0:20}.img
    TEMP_FILES+=("$image")
    rm -f -- "$image"
    truncate -s "$DEVICE_SIZE" -- "$image"
    last=$((DEVICE_SIZE - MIB))
    read_region "$image" 0
    read_region "$image" "$last"
    cmp -s -n "$MIB" -- "$image" /dev/zero || zero=0
    cmp -s -n "$MIB" -i "$last:0" -- "$image" /dev/zero || zero=0
    if ((zero)); then
        log "volume $VOLUME_ID is blank: $DEVICE_SIZE bytes, its first and last MiB read back" \
            "as zeros"
        return 0
    fi
    found=$(wipefs --no-act --noheadings --output TYPE,OFFSET -- "$image" </dev/null 2>&1) ||
        status=$?
    if ((status == 0)) && [[ -z $found ]]; then
        found=$(blkid -p -o export -- "$image" </dev/null 2>&1) || status=$?
        if ((status == 2)); then
            log "volume $VOLUME_ID is blank: $DEVICE_SIZE bytes, no signature in its first and" \
                "last MiB"
            return 0
        fi
    fi
    die "could not probe volume $VOLUME_ID ($DEVICE): blkid found nothing on the device, but" \
        "its first and last MiB, read directly, hold: ${found//$'\n'/ } (exit $status), so the" \
        "probe failed (a read error?). Nothing was changed. Check 'dmesg' and 'wipefs -n" \
        "$DEVICE'; run again once the volume reads without errors."
}

# --- filesystem ---------------------------------------------------------------------------

ensure_filesystem() {
    probe_device
    case $PROBE_STATUS in
        0) ;;
        2) check_blank; make_filesystem; return 0 ;;
        8) die "refusing to use volume $VOLUME_ID ($DEVICE): blkid finds more than one" \
               "signature on it ($PROBE_SUMMARY). Nothing was changed. Inspect it with" \
               "'wipefs -n $DEVICE'; if it holds data you need, attach another volume." ;;
        *) die "could not probe volume $VOLUME_ID ($DEVICE): blkid exit status $PROBE_STATUS:" \
               "$PROBE_SUMMARY. Nothing was changed." ;;
    esac
    if [[ -n $PROBE_PTTYPE ]]; then
        die "refusing to use volume $VOLUME_ID ($DEVICE): it holds a $PROBE_PTTYPE partition" \
            "table, so it is not a blank volume and not a filesystem of type $FSTYPE." \
            "Nothing was changed. If this is the wrong volume, fix the share's volume; if the data" \
            "on it is not needed, wipe it yourself (wipefs -a $DEVICE) and run again."
    fi
    if [[ $PROBE_TYPE != "$FSTYPE" ]]; then
        die "refusing to use volume $VOLUME_ID ($DEVICE): it holds '${PROBE_TYPE:-unknown}'" \
            "($PROBE_SUMMARY), not an $FSTYPE filesystem (share_volume_fstype)." \
            "Nothing was changed: this script never formats a volume that holds a signature." \
            "If this is the wrong volume, fix the share's volume; if the data on it is not" \
            "needed, wipe it yourself (wipefs -a $DEVICE) and run again."
    fi
    [[ -n $PROBE_UUID ]] ||
        die "the $FSTYPE filesystem on $DEVICE has no UUID, so it cannot go in /etc/fstab." \
            "Give it one with 'tune2fs -U random $DEVICE' and run again."
    FS_UUID=$PROBE_UUID
    log "using the existing $FSTYPE filesystem $FS_UUID on $DEVICE (not formatted)"
}

make_filesystem() {
    # The UUID is chosen and noted on the root disk before mkfs, so that a run cut short
    # between mkfs and the first mount still finishes the first-mount chmod when run again.
    own_directory "$STATE_DIR"
    own_directory "$NEW_FILESYSTEMS_DIR"
    FS_UUID=$(</proc/sys/kernel/random/uuid)
    write_file "$NEW_FILESYSTEMS_DIR/${VOLUME_ID:0:20}" "$FS_UUID"$'\n'
    checkpoint marked
    log "making an $FSTYPE filesystem on volume $VOLUME_ID ($DEVICE)"
    # No -F: mke2fs itself refuses a device where it sees a signature (stdin is /dev/null, so
    # it cannot be asked). No discard: a wrong decision must not also make the blocks unreadable.
    # -m 0 is Manila's set_zero_reserved_blocks: a share is for its users, not for root.
    "mkfs.$FSTYPE" -q -U "$FS_UUID" -m 0 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 \
        "$DEVICE" </dev/null >&2
    log "made $FSTYPE filesystem $FS_UUID with no reserved blocks"
    checkpoint formatted
}

# --- a filesystem copied from another volume ----------------------------------------------
# A volume made from a Cinder snapshot (or copied from another volume) holds its source's
# filesystem, UUID included. fstab names filesystems by UUID, so two filesystems with one UUID
# on this server would let boot mount either one on either path. Manila's generic driver gives
# every filesystem a new random UUID at every mount (e2fsck -y -f, then tune2fs -U random);
# here the UUID is the one in the share's fstab line, so it changes only when it is not this
# share's own yet and something else on the server already carries it.

# uuid_users UUID: sets UUID_USERS to what else on this server carries filesystem UUID: every
# other block device whose filesystem has it (read from the device itself, blkid -p, not from
# a cache that may be stale), and every fstab line that mounts it on another path (its device
# may be gone, or not attached yet). UUID_UNREADABLE lists the devices that could not be read.
uuid_users() {
    local uuid=$1 class number size found entry
    local pattern='^[[:space:]]*UUID="?([^"[:space:]]+)"?[[:space:]]+([^[:space:]]+)'
    UUID_USERS=() UUID_UNREADABLE=()
    for class in /sys/class/block/*; do
        read -r number <"$class/dev" || continue
        [[ $number != "$DEVICE_NUMBER" ]] || continue
        read -r size <"$class/size" || continue
        ((size > 0)) || continue # an empty loop device, a drive without a disc
        found=""
        if ! found=$(blkid -p -s UUID -o value "/dev/block/$number" </dev/null 2>/dev/null); then
            # 2: nothing found, which is also what a read error gives; nothing to compare.
            UUID_UNREADABLE+=("${class##*/}")
            continue
        fi
        if [[ $found == "$uuid" ]]; then
            UUID_USERS+=("device ${class##*/} ($number)")
        fi
    done
    if [[ -f /etc/fstab ]]; then
        while IFS= read -r entry; do
            if [[ $entry =~ $pattern && ${BASH_REMATCH[1]} == "$uuid" &&
                ${BASH_REMATCH[2]} != "$MOUNT_PATH" ]]; then
                UUID_USERS+=("the /etc/fstab line for ${BASH_REMATCH[2]}")
            fi
        done </etc/fstab
    fi
}

# ensure_own_uuid: give the share's filesystem a new UUID if, and only if, it is not mounted on
# MOUNT_PATH yet (once it is, it is this share's, and its fstab line names its UUID) and
# something else on this server carries the same UUID. (A share that is not mounted has no
# fstab line by now: ensure_share withdrew it.) Runs under the filesystem-uuids lock, so that
# two shares made at once from one snapshot look at each other one after the other.
ensure_own_uuid() {
    local new users features seed_option=()
    ((!ALREADY_MOUNTED)) || return 0
    uuid_users "$FS_UUID"
    if ((${#UUID_UNREADABLE[@]})); then
        log "note: could not read the filesystem UUID on ${UUID_UNREADABLE[*]} (blank or" \
            "unreadable) while looking for other filesystems with UUID $FS_UUID"
    fi
    ((${#UUID_USERS[@]})) || return 0
    new=$(</proc/sys/kernel/random/uuid)
    users=$(printf '%s; ' "${UUID_USERS[@]}")
    log "the filesystem on volume $VOLUME_ID has UUID $FS_UUID, and so has: ${users%; } (the" \
        "volume is a copy of another, from a snapshot?): giving it the new UUID $new, so that" \
        "each UUID in /etc/fstab names one filesystem"
    features=$(dumpe2fs -h "$DEVICE" </dev/null 2>/dev/null | sed -n 's/^Filesystem features://p')
    if [[ " $features " == *" metadata_csum "* && " $features " != *" metadata_csum_seed "* ]]
    then
        # With metadata_csum, every metadata checksum is seeded with the UUID: changing it
        # would rewrite them all (tune2fs then first insists on e2fsck -f), and a run cut short
        # half-way would leave a filesystem of bad checksums. metadata_csum_seed keeps the old
        # seed in the superblock, so the change is one superblock write (ext4(5); Linux 4.4,
        # e2fsprogs 1.43 and later read it).
        seed_option=(-O metadata_csum_seed)
    fi
    # (tune2fs replays the journal first when a snapshot of a mounted filesystem needs it.)
    tune2fs ${seed_option[@]+"${seed_option[@]}"} -U "$new" "$DEVICE" </dev/null >&2 ||
        die "tune2fs could not give the filesystem on $DEVICE a new UUID; see its message" \
            "above. It is not mounted, exported or in /etc/fstab, and its files were not" \
            "touched. Check it with 'e2fsck -fn $DEVICE' and run again."
    probe_device
    [[ $PROBE_STATUS == 0 && $PROBE_UUID == "$new" ]] ||
        die "after tune2fs, $DEVICE reads as UUID '${PROBE_UUID:-none}' ($PROBE_SUMMARY), not" \
            "$new. Check it with 'e2fsck -fn $DEVICE' and run again."
    FS_UUID=$new
    log "the filesystem on volume $VOLUME_ID now has UUID $FS_UUID (its data unchanged)"
    checkpoint new-uuid
}

# --- mounts and what holds them -----------------------------------------------------------

# mount_points_of DEVICE_NUMBER: sets MOUNT_POINTS to every place where that major:minor is
# mounted (fields 3 and 5 of mountinfo).
mount_points_of() {
    local _id _parent number _root target _rest
    MOUNT_POINTS=()
    while read -r _id _parent number _root target _rest; do
        if [[ $number == "$1" ]]; then
            MOUNT_POINTS+=("$target")
        fi
    done </proc/self/mountinfo
}

# physical_mount_root: MOUNT_ROOT with every symlink resolved (cd -P, a builtin), in
# PHYSICAL_ROOT; empty if it does not exist (yet).
physical_mount_root() {
    PHYSICAL_ROOT=""
    if [[ -d $MOUNT_ROOT ]] && cd -P -- "$MOUNT_ROOT" 2>/dev/null; then
        PHYSICAL_ROOT=$PWD
    fi
    cd /
}

# mount_path_is_physical: whether MOUNT_PATH is spelled as the kernel spells its mount point
# in mountinfo: a directory (not a symlink) in a MOUNT_ROOT that exists and has no symlink in
# its path. (The arguments have no . or .. component, no // and no character that mountinfo
# escapes.)
mount_path_is_physical() {
    [[ $MOUNT_ROOT != *//* && ! -L $MOUNT_PATH && (-d $MOUNT_PATH || ! -e $MOUNT_PATH) ]] ||
        return 1
    physical_mount_root
    [[ -n $PHYSICAL_ROOT && $PHYSICAL_ROOT == "$MOUNT_ROOT" ]]
}

# refuse_resolved_mount_root: the kernel knows a mount, and NFS a share, by the path with its
# symlinks resolved (mountinfo, and exportfs in mountd's table), so under a MOUNT_ROOT reached
# through a symlink an NFS share could never be exported as declared, and a share's own mount
# would look like another mount of its volume (delete would refuse it as in use). Refused
# before anything is changed, on the first run too: a MOUNT_ROOT that does not exist yet is
# made (mkdir -p) in the deepest of its directories that does, so that one is resolved.
refuse_resolved_mount_root() {
    local existing=$MOUNT_ROOT rest="" resolved=$MOUNT_ROOT
    while [[ -n $existing && ! -d $existing ]]; do
        rest=/${existing##*/}$rest
        existing=${existing%/*}
    done
    if [[ -n $existing ]] && cd -P -- "$existing" 2>/dev/null; then
        resolved=${PWD%/}$rest
    fi
    cd /
    [[ $resolved == "$MOUNT_ROOT" ]] ||
        die "share_mount_path $MOUNT_ROOT is reached through a symlink: it is $resolved." \
            "The kernel and NFS know a mount by that path, so $MOUNT_PATH could not be" \
            "mounted and exported as declared. Nothing was changed. Set share_mount_path to" \
            "$resolved (or make $MOUNT_ROOT a directory) and run again."
}

# mount_state: what is mounted on MOUNT_PATH. Sets MOUNTED_NUMBER (its major:minor, or empty)
# and MOUNTED_LIVE (0 if that is a block device that no longer exists: a volume detached under
# its mount leaves a mount of a device that is gone; major 0 is a filesystem without a device,
# such as tmpfs, never gone), and MOUNTED_ID (its mount id in mountinfo, when read there).
# When the path is spelled as mountinfo spells it, read by bash (mountpoint costs a program
# start, twice per run): the mount is the one that the kernel opens the path in now (the
# mnt_id of the open directory, proc(5) fdinfo, Linux 3.15), if mountinfo has it on the path.
# A line of mountinfo for the path is not enough, nor is its last one, which is what
# mountpoint(1) takes: a mount over the mount root or a directory above it hides the share's
# mount, which keeps its line (the path then leads to a directory of that cover, which
# clients would be served); a mount that propagation puts beneath the share's volume is
# listed after it. Else asked of mountpoint, which resolves symlinks.
mount_state() {
    local id _parent number _root target _rest fd="" key value open_id=""
    MOUNTED_NUMBER="" MOUNTED_LIVE=0 MOUNTED_ID=""
    if mount_path_is_physical; then
        # (Nothing can be mounted where there is no directory: no open, no line taken.)
        [[ -d $MOUNT_PATH ]] || return 0
        if { exec {fd}<"$MOUNT_PATH"; } 2>/dev/null; then
            while read -r key value; do
                [[ $key != mnt_id: ]] || open_id=$value
            done </proc/self/fdinfo/"$fd"
            exec {fd}<&-
        fi
        while read -r id _parent number _root target _rest; do
            # (Without an mnt_id, the directory could not be opened: the last line, as before.)
            if [[ $target == "$MOUNT_PATH" && (-z $open_id || $id == "$open_id") ]]; then
                MOUNTED_NUMBER=$number MOUNTED_ID=$id
            fi
        done </proc/self/mountinfo
    else
        MOUNTED_NUMBER=$(mountpoint -d -- "$MOUNT_PATH" 2>/dev/null) || MOUNTED_NUMBER=""
    fi
    if [[ -n $MOUNTED_NUMBER ]] &&
        [[ ${MOUNTED_NUMBER%%:*} == 0 || -e /sys/dev/block/$MOUNTED_NUMBER ]]; then
        MOUNTED_LIVE=1
    fi
}

# find_holders NUMBER [SAMBA]: sets HOLDERS to what keeps the filesystem of device NUMBER
# (major:minor) in use, one line each: local processes (open files, working or root directory,
# mapped files), NFSv4 clients with open files, locks or delegations on it, other mounts of it,
# and unless SAMBA is 0, Samba clients connected to the share (smbstatus costs seconds; once
# the share is gone from Samba, its smbd processes show up as processes anyway).
find_holders() {
    local number=$1 samba=${2:-1} major=${1%%:*} minor=${1#*:} dev file_dev path pid what
    local comm user seen=" "
    local client count file address name service machine target superblock
    HOLDERS=()
    # st_dev as stat(2) reports it (the kernel's new_encode_dev).
    dev=$(((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)))
    while read -r file_dev path; do
        [[ $file_dev == "$dev" ]] || continue
        pid=${path#/proc/}
        pid=${pid%%/*}
        [[ $seen != *" $pid "* ]] || continue
        seen+="$pid "
        what=$(readlink -- "$path" 2>/dev/null) || what=$path
        case $path in
            */cwd) what="working directory $what" ;;
            */root) what="root directory $what" ;;
            *) what="has $what open" ;;
        esac
        comm=$(cat /proc/"$pid"/comm 2>/dev/null) || comm="?"
        user=$(stat -c %U /proc/"$pid" 2>/dev/null) || user="?"
        HOLDERS+=("process $pid ($comm, user $user): $what")
    done < <(
        # (Processes come and go while find looks: it then exits 1, which means nothing here.)
        {
            find -L /proc/[0-9]*/cwd /proc/[0-9]*/root -maxdepth 0 -printf '%D %p\n' 2>/dev/null ||
                true
            find -L /proc/[0-9]*/fd /proc/[0-9]*/map_files -mindepth 1 -maxdepth 1 \
                -printf '%D %p\n' 2>/dev/null || true
        } | awk -v dev="$dev" '$1 == dev'
    )
    # /proc/fs/nfsd/clients/*/states: one line per open, lock, delegation or layout, with the
    # superblock as "major:minor:inode" in hex. Even a read delegation (the client caches what
    # it read) pins the filesystem, and this kernel has no way to revoke it short of
    # expiring the client everywhere; the client returns it when it unmounts, or when it has
    # not used the file for a couple of lease periods.
    superblock=$(printf 'superblock: "%02x:%02x:' "$major" "$minor")
    for client in /proc/fs/nfsd/clients/*; do
        [[ -r $client/states ]] || continue
        count=0 cached=0 file=""
        while read -r path; do
            [[ $path == *"$superblock"* ]] || continue
            if [[ $path == *"type: deleg, access: r,"* ]]; then
                cached=$((cached + 1))
            else
                count=$((count + 1))
            fi
            if [[ -z $file && $path =~ filename:\ \"([^\"]*)\" ]]; then
                file=${BASH_REMATCH[1]}
            fi
        done <"$client/states"
        ((count + cached)) || continue
        address=$(sed -n 's/^address: "\(.*\)"$/\1/p' "$client/info" 2>/dev/null) || true
        name=$(sed -n 's/^name: "\(.*\)"$/\1/p' "$client/info" 2>/dev/null) || true
        what="$count open files or locks"
        if ((cached)); then
            what+=" and $cached read delegations (cached reads it gives back when it unmounts"
            what+=" or stops using them)"
        fi
        HOLDERS+=("NFS client ${address:-?} (${name:-?}, $client): $what${file:+, e.g. $file}")
    done
    # Samba: every connection to the share (smbstatus -S: service, pid, machine, ...).
    if ((samba)) && [[ $PROTOCOL != nfs ]] && command -v smbstatus >/dev/null &&
        ! samba_reserved_name; then
        while read -r service pid machine _; do
            [[ $service == "$NAME" && $pid =~ ^[0-9]+$ ]] || continue
            HOLDERS+=("Samba client $machine connected to share $NAME (smbd process $pid)")
        done < <(smbstatus -S </dev/null 2>/dev/null || true)
    fi
    mount_points_of "$number"
    for target in ${MOUNT_POINTS[@]+"${MOUNT_POINTS[@]}"}; do
        if [[ $target != "$MOUNT_PATH" ]]; then
            HOLDERS+=("another mount of the same filesystem, on $target")
        fi
    done
    while read -r _ _ _ _ target _; do
        if [[ $target == "$MOUNT_PATH"/* ]]; then
            HOLDERS+=("a filesystem mounted inside it, on $target")
        fi
    done </proc/self/mountinfo
}

# refuse_if_in_use NUMBER WHAT: die, having changed nothing, if anything uses the filesystem
# of device NUMBER mounted on MOUNT_PATH; WHAT says what would have been done.
refuse_if_in_use() {
    local number=$1 what=$2 holder
    find_holders "$number"
    ((${#HOLDERS[@]})) || return 0
    log "ERROR: refusing to $what: $MOUNT_PATH is in use by:"
    for holder in "${HOLDERS[@]}"; do
        log "  - $holder"
    done
    die "nothing was changed: $MOUNT_PATH stays mounted and exported as it was. This script" \
        "never detaches a filesystem in use (it would lose what its users have not written)." \
        "Stop them: close the files, unmount the share on the NFS clients, disconnect the Samba" \
        "clients. Or end them yourself, losing what they did not save: kill the processes;" \
        "'echo expire > /proc/fs/nfsd/clients/<id>/ctl' ends an NFS client's opens, locks and" \
        "delegations on every share of this server; 'smbcontrol smbd close-share $NAME'" \
        "disconnects the Samba clients. Then run again (pulumi up or destroy)."
}

# users_text: HOLDERS as one line, or what to check when nothing visible holds it.
users_text() {
    USERS="nothing this script can see (check losetup -a, swapon --show and findmnt -R"
    USERS+=" $MOUNT_PATH)"
    if ((${#HOLDERS[@]})); then
        USERS=$(printf '%s; ' "${HOLDERS[@]}")
        USERS=${USERS%; }
    fi
}

# unmount: plain umount, never lazy. The share is withdrawn by now, so no client can start
# using it; whatever did in the meantime stops the unmount, loudly.
unmount() {
    local tries=0 waiting=0 error number lease=0 deadline
    # How long to retry an unmount that nothing visible holds: nfsd keeps some state of a
    # finished NFSv4.0 client up to a lease period (a restarted nfsd, say), and that shows up
    # nowhere but in a busy unmount.
    if [[ -r /proc/fs/nfsd/nfsv4leasetime ]]; then
        read -r lease </proc/fs/nfsd/nfsv4leasetime || lease=0
    fi
    deadline=$((SECONDS + lease + 10))
    # (mount_state, not mountpoint: a mount that something over the mount root hides is in
    # mountinfo, so mountpoint takes it for mounted, but umount cannot reach it by the path.)
    mount_state
    [[ -n $MOUNTED_NUMBER ]] || return 0
    number=$MOUNTED_NUMBER
    find_holders "$number" 0
    if ((${#HOLDERS[@]})); then
        users_text
        die "$MOUNT_PATH is not exported any more, but it stays mounted: it came into use" \
            "meanwhile, by: $USERS. Run again once it is free (or run ensure, pulumi up, to" \
            "export it again)."
    fi
    while mount_state && [[ -n $MOUNTED_NUMBER ]]; do
        ((tries++ < 5)) || die "$MOUNT_PATH is still mounted after $tries unmounts; see" \
            "'findmnt $MOUNT_PATH'."
        number=$MOUNTED_NUMBER
        if error=$(umount -- "$MOUNT_PATH" </dev/null 2>&1); then
            log "unmounted $MOUNT_PATH"
            continue
        fi
        find_holders "$number" 0
        if ((${#HOLDERS[@]} == 0 && SECONDS < deadline)); then
            if ((!waiting)); then
                log "$MOUNT_PATH is busy, with no user in sight: waiting up to" \
                    "$((deadline - SECONDS))s for the kernel (nfsd) to let go of it"
                waiting=1
            fi
            tries=$((tries - 1))
            sleep 2
            continue
        fi
        users_text
        die "could not unmount $MOUNT_PATH: ${error:-umount failed}. In use by: $USERS." \
            "It is not exported any more and stays mounted: this script never detaches a" \
            "filesystem in use (umount -l). Run again once it is free; run ensure (pulumi" \
            "up) to export it again."
    done
}

# refuse_hidden_mount: MOUNT_PATH leads to no mount of a volume now, but mountinfo may still
# list one on it that something mounted over it or over a directory above it hides: that
# filesystem is still mounted, and a delete that said it was done would let Nova detach its
# volume from under it. Dies naming it.
refuse_hidden_mount() {
    local id _parent number _root target _rest
    local -a hidden=()
    mount_path_is_physical || return 0
    mount_state
    while read -r id _parent number _root target _rest; do
        if [[ $target == "$MOUNT_PATH" && $id != "$MOUNTED_ID" && ${number%%:*} != 0 ]]; then
            hidden+=("$number")
        fi
    done </proc/self/mountinfo
    ((${#hidden[@]} == 0)) ||
        die "$MOUNT_PATH is not exported any more, but the filesystem of device" \
            "${hidden[*]} is still mounted on it, hidden: something is mounted over it or over" \
            "a directory above it, so it cannot be unmounted by its path. Its volume must not" \
            "be detached yet. See 'findmnt -T $MOUNT_PATH' and 'grep $MOUNT_PATH" \
            "/proc/self/mountinfo', unmount what covers it, then run again."
}

# check_mount_point: before anything is written, refuse a mount point that holds another
# device, and a volume that is mounted somewhere else. A mount left by a volume that was
# detached under it (its device is gone) is unmounted, if nothing uses it, so that the volume
# can be mounted again. Sets ALREADY_MOUNTED.
check_mount_point() {
    local target
    ALREADY_MOUNTED=0
    mount_state
    if [[ -n $MOUNTED_NUMBER ]] && ((!MOUNTED_LIVE)); then
        log "$MOUNT_PATH is a mount of device $MOUNTED_NUMBER, which is gone (its volume was" \
            "detached under it): unmounting it to mount the volume again"
        refuse_if_in_use "$MOUNTED_NUMBER" "unmount the mount of the detached device"
        unmount
        checkpoint unmounted
        mount_state
    fi
    if [[ -n $MOUNTED_NUMBER ]]; then
        if [[ $MOUNTED_NUMBER != "$DEVICE_NUMBER" ]]; then
            refuse_other_mount
        fi
        ALREADY_MOUNTED=1
        return 0
    fi
    mount_points_of "$DEVICE_NUMBER"
    for target in ${MOUNT_POINTS[@]+"${MOUNT_POINTS[@]}"}; do
        [[ $target != "$MOUNT_PATH" ]] ||
            die "volume $VOLUME_ID ($DEVICE) is mounted on $MOUNT_PATH, but hidden: something" \
                "is mounted over it or over a directory above it, so $MOUNT_PATH leads to" \
                "that instead, and nothing may be served from there: the share's exports and" \
                "fstab line were removed; the volume and its data were not touched. See" \
                "'findmnt -T $MOUNT_PATH' and 'grep $MOUNT_PATH /proc/self/mountinfo'," \
                "unmount what covers it, then run again."
        die "volume $VOLUME_ID ($DEVICE) is already mounted on $target, not on" \
            "$MOUNT_PATH. Nothing was changed. Two shares cannot use one volume:" \
            "check the share's volume, or unmount $target."
    done
}

# refuse_other_mount: MOUNT_PATH holds another device than the share's volume. If it is not
# the filesystem that the share's fstab line names either (a hand-made mount, say), nothing may
# keep pointing at it: the share is withdrawn. If it is (the share's volume id changed, or the
# mix-up is in the arguments), nothing is changed.
refuse_other_mount() {
    local mounted_uuid fstab_uuid="" entry
    local pattern='^[[:space:]]*UUID=([^[:space:]]+)[[:space:]]+([^[:space:]]+)'
    mounted_uuid=$(blkid -p -s UUID -o value "/dev/block/$MOUNTED_NUMBER" </dev/null 2>/dev/null) ||
        mounted_uuid=""
    while IFS= read -r entry; do
        if [[ $entry =~ $pattern && ${BASH_REMATCH[2]} == "$MOUNT_PATH" ]]; then
            fstab_uuid=${BASH_REMATCH[1]}
        fi
    done </etc/fstab
    if [[ -z $mounted_uuid || $mounted_uuid != "$fstab_uuid" ]]; then
        withdraw_share
        die "$MOUNT_PATH is a mount point of device $MOUNTED_NUMBER (filesystem" \
            "${mounted_uuid:-unknown}), which is neither volume $VOLUME_ID ($DEVICE," \
            "$DEVICE_NUMBER) nor the filesystem this share was made on, so the share's exports" \
            "and fstab line were removed; nothing else was changed. Check 'findmnt" \
            "$MOUNT_PATH': unmount what was mounted there by hand, then run again."
    fi
    die "$MOUNT_PATH is already a mount point of device $MOUNTED_NUMBER, not of volume" \
        "$VOLUME_ID ($DEVICE, $DEVICE_NUMBER). Nothing was changed. Check 'findmnt" \
        "$MOUNT_PATH': if another share uses this path, give this one another name; if the" \
        "share's volume changed, delete the share first."
}

# check_mount_root: the directory that holds the mount points must be root's alone, or a local
# user could swap a mount point for a symlink to anywhere.
check_mount_root() {
    local owner mode error
    if [[ ! -d $MOUNT_ROOT ]]; then
        error=$(mkdir -p -- "$MOUNT_ROOT" 2>&1) ||
            die "could not make $MOUNT_ROOT: ${error##*: }. Is the disk full? Free space" \
                "(df -h /) and run again."
    fi
    read -r owner mode < <(stat -L -c '%u %a' -- "$MOUNT_ROOT")
    ((owner == 0 && (8#$mode & 8#022) == 0)) ||
        die "$MOUNT_ROOT (share_mount_path) must belong to root and be writable by root only;" \
            "it has owner uid $owner and mode $mode. Nothing was changed. Fix it (chown root" \
            "$MOUNT_ROOT; chmod go-w $MOUNT_ROOT) and run again."
    [[ ! -L $MOUNT_PATH ]] ||
        die "$MOUNT_PATH is a symlink, not a directory. Nothing was changed. Remove it and" \
            "run again."
}

ensure_mounted() {
    local marker=$NEW_FILESYSTEMS_DIR/${VOLUME_ID:0:20} noted="" error
    if ((ALREADY_MOUNTED)); then
        log "$DEVICE is already mounted on $MOUNT_PATH"
    else
        check_mount_root
        if [[ ! -d $MOUNT_PATH ]]; then
            error=$(mkdir -- "$MOUNT_PATH" 2>&1) ||
                die "could not make $MOUNT_PATH: ${error##*: }. Is the disk full? Free space" \
                    "(df -h $MOUNT_ROOT) and run again."
        fi
        local -a hidden
        hidden=("$MOUNT_PATH"/* "$MOUNT_PATH"/.[!.]*)
        if [[ -e ${hidden[0]} || -e ${hidden[1]} ]]; then
            log "warning: $MOUNT_PATH holds files on the root disk; the mount hides them"
        fi
        mount -t "$FSTYPE" -- "$DEVICE" "$MOUNT_PATH" </dev/null
        log "mounted $DEVICE on $MOUNT_PATH"
        checkpoint mounted
    fi
    [[ -e $marker ]] || return 0
    own_directory "$STATE_DIR"
    own_directory "$NEW_FILESYSTEMS_DIR"
    read -r noted <"$marker" || true
    if [[ $noted == "$FS_UUID" ]]; then
        # Manila's chmod 777: guests (nobody over CIFS, any uid over NFS) must be able to write.
        chmod 777 -- "$MOUNT_PATH"
        log "new filesystem: made the share root $MOUNT_PATH writable by all (777)"
        checkpoint opened
    fi
    rm -f -- "$marker"
}

# spelled_through_symlinks SPELLING PATH: whether SPELLING, its directory's symlinks resolved
# (cd -P, a builtin), is PATH.
spelled_through_symlinks() {
    local resolved=""
    if [[ $1 != "$2" && $1 == /*/* ]] && cd -P -- "${1%/*}" 2>/dev/null; then
        resolved=${PWD%/}/${1##*/}
    fi
    cd /
    [[ -n $resolved && $resolved == "$2" ]]
}

# set_fstab_entry PATH LINE [UUID]: make LINE the one /etc/fstab entry for PATH (in place of
# any other entry for PATH, keeping its position); with an empty LINE, drop the entries for
# PATH. With UUID, an entry that mounts that filesystem on another spelling of PATH (through a
# symlink: a share made under a share_mount_path reached through one, moved to the resolved
# path as ensure then asks) is PATH's too. Sets FSTAB_CHANGED.
set_fstab_entry() {
    local path=$1 line=$2 uuid=${3-} entry current="" wanted="" placed=0
    local same_uuid="^[[:space:]]*UUID=\"?${uuid}\"?[[:space:]]+([^[:space:]]+)"
    local -a entries=()
    FSTAB_CHANGED=0
    if [[ -f /etc/fstab ]]; then
        mapfile -t entries </etc/fstab
    fi
    for entry in ${entries[@]+"${entries[@]}"}; do
        current+=$entry$'\n'
        if [[ $entry =~ $FSTAB_ENTRY && ${BASH_REMATCH[1]} == "$path" ]] || {
            [[ -n $uuid && $entry =~ $same_uuid ]] &&
                spelled_through_symlinks "${BASH_REMATCH[1]}" "$path"
        }; then
            if ((!placed)) && [[ -n $line ]]; then
                wanted+=$line$'\n'
            fi
            placed=1
            continue
        fi
        wanted+=$entry$'\n'
    done
    if ((!placed)) && [[ -n $line ]]; then
        wanted+=$line$'\n'
    fi
    [[ $wanted != "$current" ]] || return 0
    write_file /etc/fstab "$wanted"
    FSTAB_CHANGED=1
}

# fstab_line: the share's /etc/fstab entry (FS_UUID on MOUNT_PATH), in FSTAB_LINE. nofail: a
# volume missing at boot must not stop the server from booting.
fstab_line() {
    FSTAB_LINE="UUID=$FS_UUID $MOUNT_PATH $FSTYPE defaults,nofail 0 2"
}

ensure_fstab() {
    fstab_line
    with_lock fstab set_fstab_entry "$MOUNT_PATH" "$FSTAB_LINE" "$FS_UUID"
    # (No systemctl daemon-reload: systemd reads /etc/fstab at boot, which is when this line
    # matters, and a reload costs seconds on a busy service instance.)
    if ((FSTAB_CHANGED)); then
        log "/etc/fstab mounts UUID=$FS_UUID on $MOUNT_PATH at boot"
        checkpoint in-fstab
    else
        log "/etc/fstab already mounts UUID=$FS_UUID on $MOUNT_PATH"
    fi
}

drop_fstab_entry() {
    with_lock fstab set_fstab_entry "$MOUNT_PATH" ""
    if ((FSTAB_CHANGED)); then
        log "removed $MOUNT_PATH from /etc/fstab"
        checkpoint out-of-fstab
    fi
}

remove_mount_point() {
    [[ -d $MOUNT_PATH && ! -L $MOUNT_PATH ]] || return 0
    ! mountpoint -q -- "$MOUNT_PATH" || return 0
    if rmdir -- "$MOUNT_PATH" 2>/dev/null; then
        log "removed the empty directory $MOUNT_PATH"
    else
        log "warning: left $MOUNT_PATH in place: it is not empty (files on the root disk)"
    fi
}

# filesystem_size: the block size and count of the filesystem on DEVICE, from its superblock
# (dumpe2fs -h reads it, changes nothing), in BLOCK_SIZE and BLOCK_COUNT.
filesystem_size() {
    local key value
    BLOCK_SIZE=0 BLOCK_COUNT=0
    while IFS=':' read -r key value; do
        case $key in
            'Block count') BLOCK_COUNT=${value// /} ;;
            'Block size') BLOCK_SIZE=${value// /} ;;
        esac
    done < <(dumpe2fs -h "$DEVICE" </dev/null 2>/dev/null)
    ((BLOCK_SIZE > 0 && BLOCK_COUNT > 0)) ||
        die "could not read the size of the filesystem on $DEVICE (dumpe2fs -h $DEVICE)."
}

# filesystem_fills_volume SIZE: sets FILLS to 0 if the filesystem (filesystem_size) has room
# to grow by a block on a volume of SIZE bytes, which is when ensure grows it; else 1.
filesystem_fills_volume() {
    FILLS=1
    if (($1 / BLOCK_SIZE > BLOCK_COUNT)); then
        FILLS=0
    fi
}

grow_filesystem() {
    local size
    wait_for_volume_size
    size=$DEVICE_SIZE
    filesystem_size
    filesystem_fills_volume "$size"
    if ((!FILLS)); then
        log "growing the filesystem on $MOUNT_PATH online from $((BLOCK_COUNT * BLOCK_SIZE))" \
            "to $size bytes"
        resize2fs "$DEVICE" </dev/null >&2
        log "filesystem grown to $size bytes"
    else
        log "filesystem already fills the volume ($size bytes)"
    fi
}

# --- NFS ----------------------------------------------------------------------------------

# exports_line ADDRESS LEVEL: the exports(5) entry for one client, in EXPORTS_LINE. Manila's
# options, plus mp: export only while the volume is mounted there, never the bare directory on
# the root disk (after a reboot without the volume, say).
exports_line() {
    EXPORTS_LINE="$MOUNT_PATH $1($2,no_subtree_check,no_root_squash,mp)"
}

# wanted_nfs_clients: sets WANTED (address in the exports(5) form -> rw|ro) and
# WANTED_ORDER (the addresses in the order of the rules) from --client. Manila's client forms
# bracket IPv6 ("[1001::1]/124", for `exportfs -o ... client:path`); in exports(5) the address
# goes bare. An address given twice gets ro if either says ro.
wanted_nfs_clients() {
    local client address
    WANTED=() WANTED_ORDER=()
    for client in ${CLIENTS[@]+"${CLIENTS[@]}"}; do
        address=${client#*:}
        address=${address/\[/}
        address=${address/\]/}
        if [[ -z ${WANTED[$address]+set} ]]; then
            WANTED_ORDER+=("$address")
            WANTED[$address]=${client%%:*}
        elif [[ ${client%%:*} == ro ]]; then
            WANTED[$address]=ro
        fi
    done
}

# exports_file_text LINES...: the share's exports file with these entries.
exports_file_text() {
    local line
    EXPORTS_TEXT="# share $NAME: written by manila-dhss share.sh on every ensure; edits are lost"$'\n'
    if (($# == 0)); then
        EXPORTS_TEXT+="# no access rules: $MOUNT_PATH is not exported"$'\n'
    fi
    for line in "$@"; do
        EXPORTS_TEXT+=$line$'\n'
    done
}

# set_exports_file TEXT: the share's exports file holds TEXT (or, with no TEXT, is gone).
# Sets EXPORTS_CHANGED.
set_exports_file() {
    local file=$EXPORTS_DIR/$NAME.exports wanted=${1-} current=""
    EXPORTS_CHANGED=0
    if [[ -z $wanted ]]; then
        [[ -e $file ]] || return 0
        rm -f -- "$file"
        EXPORTS_CHANGED=1
        return 0
    fi
    if [[ -f $file ]]; then
        IFS= read -r -d '' current <"$file" || true
    fi
    [[ $current != "$wanted" ]] || return 0
    [[ -d $EXPORTS_DIR ]] || mkdir -p -- "$EXPORTS_DIR"
    write_file "$file" "$wanted"
    EXPORTS_CHANGED=1
}

# sorted_lines ITEM...: the items in order, one per line, in SORTED. In bash, without
# sort(1): every program started costs tens of milliseconds on a small service instance, and
# an unchanged run must cost little more than the ssh login. (Only ever compared with another
# list sorted here, so bash's own string order is all that matters.)
sorted_lines() {
    local item i
    local -a ordered=()
    for item in "$@"; do
        i=${#ordered[@]}
        while ((i > 0)) && [[ ${ordered[i - 1]} > "$item" ]]; do
            ordered[i]=${ordered[i - 1]}
            i=$((i - 1))
        done
        ordered[i]=$item
    done
    SORTED=""
    if ((${#ordered[@]})); then
        printf -v SORTED '%s\n' "${ordered[@]}"
        SORTED=${SORTED%$'\n'}
    fi
}

# nfs_clients_of SOURCE: the "address level" pairs that SOURCE (the share's exports file, or
# ETAB: what mountd serves) gives MOUNT_PATH, sorted, one per line, in NFS_CLIENTS.
nfs_clients_of() {
    local source=$1 line
    local -a pairs=()
    NFS_CLIENTS=""
    [[ -f $source ]] || return 0
    while IFS= read -r line; do
        if [[ $line =~ $EXPORTS_ENTRY && ${BASH_REMATCH[1]} == "$MOUNT_PATH" ]]; then
            pairs+=("${BASH_REMATCH[2]} ${BASH_REMATCH[3]}")
        fi
    done <"$source"
    sorted_lines ${pairs[@]+"${pairs[@]}"}
    NFS_CLIENTS=$SORTED
}

# nfs_table_applied: sets NFS_APPLIED to 1 if mountd's table (ETAB) holds exactly what the
# exports files of this script's shares say, for their paths and for MOUNT_PATH; to 0, with
# what differs in NFS_DIFFERENCE, if not. A full root disk makes exportfs write an empty table,
# and exit 0, which takes every share off NFS: each run checks all of them.
nfs_table_applied() {
    local file line header entry missing_text extra_text
    local -A expected=() served=()
    local -A paths=(["$MOUNT_PATH"]=1)
    local -a missing=() extra=()
    for file in "$EXPORTS_DIR"/*.exports; do
        [[ -f $file ]] || continue
        IFS= read -r header <"$file" || continue
        [[ $header == "# share "*": written by manila-dhss share.sh"* ]] || continue
        while IFS= read -r line; do
            if [[ $line =~ $EXPORTS_ENTRY ]]; then
                expected["${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[3]}"]=1
                paths[${BASH_REMATCH[1]}]=1
            fi
        done <"$file"
    done
    if [[ -f $ETAB ]]; then
        while IFS= read -r line; do
            if [[ $line =~ $EXPORTS_ENTRY && -n ${paths[${BASH_REMATCH[1]}]+set} ]]; then
                served["${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[3]}"]=1
            fi
        done <"$ETAB"
    fi
    # (Sets, compared in bash: no sort or comm to start, see sorted_lines.)
    for entry in ${expected[@]+"${!expected[@]}"}; do
        [[ -n ${served[$entry]+set} ]] || missing+=("$entry")
    done
    for entry in ${served[@]+"${!served[@]}"}; do
        [[ -n ${expected[$entry]+set} ]] || extra+=("$entry")
    done
    NFS_APPLIED=1 NFS_DIFFERENCE=""
    if ((${#missing[@]} + ${#extra[@]})); then
        NFS_APPLIED=0
        sorted_lines ${missing[@]+"${missing[@]}"}
        missing_text=${SORTED//$'\n'/, }
        sorted_lines ${extra[@]+"${extra[@]}"}
        extra_text=${SORTED//$'\n'/, }
        NFS_DIFFERENCE="${missing_text:+it lacks $missing_text}"
        NFS_DIFFERENCE+="${missing_text:+${extra_text:+; }}${extra_text:+it has $extra_text besides}"
    fi
}

# ensure_nfs_server: asked of systemd on every run. (With nfsd's thread count read first
# instead, an ensure went on to export while nfs-server was stopped and masked: the guest
# fault test for a stopped NFS server.)
ensure_nfs_server() {
    if ! systemctl is-active --quiet nfs-kernel-server </dev/null; then
        log "nfs-kernel-server is not running: starting it"
        systemctl start nfs-kernel-server </dev/null ||
            die "could not start nfs-kernel-server; see 'systemctl status nfs-kernel-server'" \
                "and 'journalctl -u nfs-server' on this server, then run again."
    fi
}

# apply_exports: exportfs -ra, then check that mountd's table (ETAB) holds what the exports
# files say (nfs_table_applied). exportfs exits 0 when it could not write that table on a full
# disk, which would leave a removed client its access, or take every share off NFS.
apply_exports() {
    local error
    error=$(exportfs -ra </dev/null 2>&1) ||
        die "exportfs -ra failed: ${error//$'\n'/; }. Until it works, NFS serves what it served" \
            "before this run. Check the files in $EXPORTS_DIR and /etc/exports, and that" \
            "/var/lib/nfs is writable (df -h /var/lib/nfs); run again."
    nfs_table_applied
    ((NFS_APPLIED)) ||
        die "exportfs -ra did not apply the exports: $ETAB (what NFS serves) is not what the" \
            "files in $EXPORTS_DIR say: $NFS_DIFFERENCE." \
            "${error:+exportfs said: ${error//$'\n'/; }. }Check that /var/lib/nfs is writable" \
            "and not full (df -h /var/lib/nfs) and that nothing else exports these paths" \
            "(/etc/exports); run again: the next run of any share re-applies them all."
}

# cut_nfs_locked: of what mountd serves MOUNT_PATH now, keep only what the rules give too (a
# client in both keeps ro if either says ro), so that a removed client is out at once.
cut_nfs_locked() {
    local address level kept_pairs=""
    local -a kept=() pairs=()
    local -A WANTED=()
    local -a WANTED_ORDER=()
    CUT=0
    wanted_nfs_clients
    nfs_clients_of "$ETAB"
    while read -r address level; do
        [[ -n $address && -n ${WANTED[$address]+set} ]] || continue
        if [[ ${WANTED[$address]} == ro ]]; then
            level=ro
        fi
        exports_line "$address" "$level"
        kept+=("$EXPORTS_LINE")
        pairs+=("$address $level")
    done <<<"$NFS_CLIENTS"
    sorted_lines ${pairs[@]+"${pairs[@]}"}
    kept_pairs=$SORTED
    [[ $kept_pairs != "$NFS_CLIENTS" ]] || return 0 # it serves nothing the rules do not give
    exports_file_text ${kept[@]+"${kept[@]}"}
    set_exports_file "$EXPORTS_TEXT"
    apply_exports
    CUT=1
}

# withdraw_nfs_locked: no exports file, and mountd's table has nothing for MOUNT_PATH. Decided
# by that table, not by the file, so that a run cut short after removing the file finishes the
# job when run again.
withdraw_nfs_locked() {
    WITHDRAWN=0
    set_exports_file ""
    if ((EXPORTS_CHANGED)); then
        checkpoint rules-removed
    fi
    nfs_clients_of "$ETAB"
    nfs_table_applied
    if [[ -n $NFS_CLIENTS ]] || ((EXPORTS_CHANGED || !NFS_APPLIED)); then
        apply_exports
        WITHDRAWN=1
    fi
}

withdraw_nfs() {
    command -v exportfs >/dev/null || return 0
    with_lock exports withdraw_nfs_locked
    if ((WITHDRAWN)); then
        log "removed the NFS exports of $MOUNT_PATH"
        checkpoint unexported
    fi
}

# wanted_exports_text: the share's exports file as the rules make it, in EXPORTS_TEXT, with
# WANTED and WANTED_ORDER set (wanted_nfs_clients; the caller declares them local).
wanted_exports_text() {
    local address
    local -a lines=()
    wanted_nfs_clients
    for address in ${WANTED_ORDER[@]+"${WANTED_ORDER[@]}"}; do
        exports_line "$address" "${WANTED[$address]}"
        lines+=("$EXPORTS_LINE")
    done
    exports_file_text ${lines[@]+"${lines[@]}"}
}

export_nfs_locked() {
    local -A WANTED=()
    local -a WANTED_ORDER=()
    wanted_exports_text
    set_exports_file "$EXPORTS_TEXT"
    if ((EXPORTS_CHANGED)); then
        log "wrote $EXPORTS_DIR/$NAME.exports"
        checkpoint rules-written
    fi
    ensure_nfs_server
    # Always: a negative answer that mountd gave while the volume was not mounted (mp) stays in
    # the kernel's cache until exportfs flushes it.
    apply_exports
}

export_nfs() {
    command -v exportfs >/dev/null ||
        die "exportfs is not installed on this server: install nfs-kernel-server."
    with_lock exports export_nfs_locked
    if ((${#CLIENTS[@]})); then
        log "exported $MOUNT_PATH over NFS to: ${CLIENTS[*]}"
    else
        log "no access rules: $MOUNT_PATH is not exported over NFS"
    fi
    checkpoint exported
}

# --- CIFS (Samba registry, like Manila's CIFSHelperIPAccess) ------------------------------

# cifs_read_only: READ_ONLY is "yes" if every client is ro, "no" if every client is rw (or
# there is none). Samba's "read only" is per share, so a mix of rw and ro cannot be honoured.
# (These helpers set variables rather than print: a $(...) is a fork of bash, tens of
# milliseconds on a small server, and a CIFS run would make ten of them.)
cifs_read_only() {
    local client rw=0 ro=0
    for client in ${CLIENTS[@]+"${CLIENTS[@]}"}; do
        case ${client%%:*} in
            rw) rw=1 ;;
            ro) ro=1 ;;
        esac
    done
    ((!(rw && ro))) ||
        die "CIFS share with both rw and ro access rules: Samba's 'read only' applies" \
            "to the whole share, so its rules must be all rw or all ro. Nothing was changed." \
            "Split the clients into two shares, or give them one level."
    if ((ro)); then READ_ONLY=yes; else READ_ONLY=no; fi
}

# cifs_addresses: the rules' addresses, space-separated, in ADDRESSES.
cifs_addresses() {
    local client addresses=()
    for client in ${CLIENTS[@]+"${CLIENTS[@]}"}; do
        addresses+=("${client#*:}")
    done
    ADDRESSES="${addresses[*]}"
}

# cifs_share_section READ_ONLY HOSTS_ALLOW: the share's Samba section, in the form that
# `net conf showshare` prints (without its last newline), in SECTION. Manila's parameters (addshare writeable=y guest_ok=y, then
# browseable, create mask, hosts deny, hosts allow, read only), plus: refuse connections while
# the volume is not mounted, rather than serve the bare directory on the root disk. An empty
# HOSTS_ALLOW is Manila's default: nobody outside the server.
cifs_share_section() {
    local read_only=$1 hosts_allow=${2:-127.0.0.1} mountpoint="" parameters
    # (mountpoint's path as command -v finds it, from bash's own table: no fork.)
    if hash mountpoint 2>/dev/null; then
        mountpoint=${BASH_CMDS[mountpoint]}
    fi
    printf -v parameters '\t%s = %s\n' \
        path "$MOUNT_PATH" \
        'guest ok' yes \
        'read only' "$read_only" \
        browseable yes \
        'create mask' 0755 \
        'hosts deny' 0.0.0.0/0 \
        'hosts allow' "$hosts_allow" \
        'root preexec' "$mountpoint -q $MOUNT_PATH" \
        'root preexec close' yes
    SECTION="[$NAME]"$'\n'${parameters%$'\n'}
}

# cifs_parameter SECTION PARAM: the value of PARAM in a section printed by net conf showshare,
# in PARAM_VALUE (bash alone, see sorted_lines).
cifs_parameter() {
    local line prefix=$'\t'"$2 = "
    PARAM_VALUE=""
    while IFS= read -r line; do
        if [[ $line == "$prefix"* ]]; then
            PARAM_VALUE=${line#"$prefix"}
        fi
    done <<<"$1"
}

# cifs_current_section: the share's registry section now, in CURRENT_SECTION. Read once per
# run (every net command costs a second on a small server): only this script changes the
# section, under the share's lock, which it holds from start to end.
cifs_current_section() {
    local message
    [[ -z ${CURRENT_SECTION+set} ]] || return 0
    # (Without its stderr: a temporary file for it would be two more program starts on every
    # run. It is read, with stdout, only when the answer is not the section.)
    CURRENT_SECTION=$(net conf showshare "$NAME" </dev/null 2>/dev/null) && return 0
    # Only "no such share" means none (net prints it on stdout): a registry that cannot be
    # read must not pass for an empty one (ensure would import over it, check would call it
    # drift).
    if [[ $CURRENT_SECTION != *NO_SUCH_SERVICE* ]]; then
        if message=$(net conf showshare "$NAME" </dev/null 2>&1); then
            message="it failed, then answered when asked again: run again"
        elif [[ $message == *NO_SUCH_SERVICE* ]]; then
            CURRENT_SECTION=""
            return 0
        fi
        die "cannot read the Samba registry (net conf showshare $NAME): ${message//$'\n'/ }"
    fi
    CURRENT_SECTION=""
}

# import_cifs_section SECTION: make SECTION the share's whole registry section (one import
# replaces it: exactly these parameters, nothing left over).
import_cifs_section() {
    local wanted=$1 temp error
    temp=$RUN_DIR/samba-$NAME.conf
    TEMP_FILES+=("$temp")
    rm -f -- "$temp"
    printf '%s\n' "$wanted" >"$temp"
    error=$(net conf import "$temp" "$NAME" </dev/null 2>&1) ||
        die "net conf import of share $NAME failed: ${error//$'\n'/; }. The Samba registry" \
            "must be usable: smb.conf needs 'include = registry' in [global] (as in Manila's" \
            "service image), and /var/lib/samba room to write (df -h /var/lib/samba); check" \
            "'net conf list' and 'testparm -s' on this server, then run again."
    rm -f -- "$temp"
    CURRENT_SECTION=$wanted
}

# smbd_running: whether smbd runs. Its pid file first, read by bash: systemctl (a D-Bus call)
# costs a tenth of a second or more on a small server; asked only when the pid file does not
# name a live smbd.
smbd_running() {
    local pid="" comm=""
    if [[ -r /run/samba/smbd.pid ]]; then
        read -r pid </run/samba/smbd.pid || true
    fi
    if [[ $pid =~ $NUMBER_PATTERN && -r /proc/$pid/comm ]]; then
        read -r comm </proc/"$pid"/comm || true
        [[ $comm != smbd ]] || return 0
    fi
    systemctl is-active --quiet smbd </dev/null
}

ensure_smbd() {
    if ! smbd_running; then
        log "smbd is not running: starting it"
        systemctl start smbd </dev/null ||
            die "could not start smbd; see 'systemctl status smbd' on this server, then run again."
    fi
}

# close_cifs_sessions: end the open sessions on the share. Samba checks "hosts allow" and
# "read only" when a client connects, so this is what makes a removed rule take effect on a
# client that is already connected (it reconnects, under the new rules).
close_cifs_sessions() {
    if smbd_running; then
        smbcontrol smbd close-share "$NAME" </dev/null >/dev/null 2>&1 || true
    fi
}

# cut_cifs_locked: keep only the access that both the registry and the rules give: the
# addresses in both, and read only if either says so.
cut_cifs_locked() {
    local current_hosts wanted_hosts host read_only=no kept=()
    CUT=0
    cifs_current_section
    [[ -n $CURRENT_SECTION ]] || return 0
    cifs_parameter "$CURRENT_SECTION" 'hosts allow'
    current_hosts=$PARAM_VALUE
    cifs_addresses
    wanted_hosts=" $ADDRESSES "
    for host in $current_hosts; do
        if [[ $wanted_hosts == *" $host "* ]]; then
            kept+=("$host")
        fi
    done
    cifs_parameter "$CURRENT_SECTION" 'read only'
    cifs_read_only
    if [[ $PARAM_VALUE == yes || $READ_ONLY == yes ]]; then
        read_only=yes
    fi
    cifs_share_section "$read_only" "${kept[*]}"
    [[ $SECTION != "$CURRENT_SECTION" ]] || return 0
    import_cifs_section "$SECTION"
    CUT=1
}

withdraw_cifs_locked() {
    WITHDRAWN=0
    cifs_current_section
    [[ -n $CURRENT_SECTION ]] || return 0
    # (net also says "delete_share_security: Failed to delete entry" when the share had no
    # ACL of its own, which is the case here: not an error.)
    net conf delshare "$NAME" </dev/null 2>/dev/null ||
        die "net conf delshare $NAME failed; run it by hand to see why (is /var/lib/samba" \
            "full? df -h /var/lib/samba), then run again."
    CURRENT_SECTION=""
    WITHDRAWN=1
    checkpoint rules-removed
}

withdraw_cifs() {
    command -v net >/dev/null || return 0
    if samba_reserved_name; then
        log "warning: not touching Samba's special section [$NAME]: no CIFS share by that name" \
            "was ever made by this script"
        return 0
    fi
    with_lock samba withdraw_cifs_locked
    if ((WITHDRAWN)); then
        log "samba: removed share $NAME"
    fi
    # Those connected when it was removed, by this run or by one cut short before it.
    close_cifs_sessions
    checkpoint unexported
}

export_cifs_locked() {
    local wanted=$1 current_access wanted_access
    ACCESS_CHANGED=0 SECTION_CHANGED=0
    cifs_current_section
    [[ $CURRENT_SECTION != "$wanted" ]] || return 0
    local current=$CURRENT_SECTION
    cifs_parameter "$current" 'hosts allow'
    current_access=$PARAM_VALUE
    cifs_parameter "$current" 'read only'
    current_access+=/$PARAM_VALUE
    cifs_parameter "$wanted" 'hosts allow'
    wanted_access=$PARAM_VALUE
    cifs_parameter "$wanted" 'read only'
    wanted_access+=/$PARAM_VALUE
    import_cifs_section "$wanted"
    SECTION_CHANGED=1
    if [[ -n $current && $current_access != "$wanted_access" ]]; then
        ACCESS_CHANGED=1
    fi
}

# wanted_cifs_section: the share's Samba section as the rules make it, in WANTED_SECTION.
wanted_cifs_section() {
    cifs_read_only
    cifs_addresses
    cifs_share_section "$READ_ONLY" "$ADDRESSES"
    WANTED_SECTION=$SECTION
}

export_cifs() {
    command -v net >/dev/null || die "net (samba-common-bin) is not installed on this server."
    wanted_cifs_section
    with_lock samba export_cifs_locked "$WANTED_SECTION"
    if ((SECTION_CHANGED)); then
        log "samba: wrote share $NAME for $MOUNT_PATH"
        checkpoint rules-written
    fi
    ensure_smbd
    if ((ACCESS_CHANGED)); then
        close_cifs_sessions
        log "samba: closed the open sessions on $NAME so that the new rules apply to them"
    fi
    log "exported $MOUNT_PATH over CIFS as share $NAME to: $ADDRESSES (read only: $READ_ONLY)"
    checkpoint exported
}

# --- access, in the order that keeps it safe ----------------------------------------------

# cut_access: before anything else, take away what the clients no longer have.
cut_access() {
    CUT=0
    if [[ $PROTOCOL == nfs ]]; then
        command -v exportfs >/dev/null || return 0
        with_lock exports cut_nfs_locked
    else
        command -v net >/dev/null || return 0
        with_lock samba cut_cifs_locked
        if ((CUT)); then
            close_cifs_sessions
        fi
    fi
    if ((CUT)); then
        log "cut the access that the rules no longer give"
        checkpoint access-cut
    fi
}

# withdraw_share: no export, no Samba share and no fstab line for MOUNT_PATH: what must hold
# whenever the share's volume is not mounted there. Without --protocol (delete), both.
withdraw_share() {
    if [[ $PROTOCOL != cifs ]]; then
        withdraw_nfs
    fi
    if [[ $PROTOCOL != nfs ]]; then
        withdraw_cifs
    fi
    drop_fstab_entry
}

# --- check: the share against what ensure would make of it, changing nothing -------------
#
# Every expected value comes from the functions ensure uses (volume_link, fstab_line,
# filesystem_fills_volume, wanted_exports_text, wanted_nfs_clients, wanted_cifs_section), so
# check and ensure cannot disagree on what a share should look like. Only reads: blkid -p,
# dumpe2fs -h, /proc/self/mountinfo, /etc/fstab, the exports file, mountd's table, net conf
# showshare, systemctl is-active, df.

# drift ASPECT WHAT: one difference between this server and the share as declared.
drift() {
    local aspect=$1
    shift
    DRIFTS+=("drift $NAME $aspect: $*")
}

check_device() {
    volume_link
    [[ -b $VOLUME_LINK ]] ||
        die "cannot check: volume $VOLUME_ID is not attached to this server: there is no" \
            "$VOLUME_LINK. Check that Cinder shows the volume attached to this server" \
            "(openstack server volume list) and 'ls -l /dev/disk/by-id' here. Nothing was changed."
    use_device
}

# check_filesystem: the volume holds a filesystem of FSTYPE; sets FS_UUID (empty if not).
check_filesystem() {
    FS_UUID=""
    probe_device
    case $PROBE_STATUS in
        0) ;;
        2)
            drift filesystem "volume $VOLUME_ID ($DEVICE) holds no filesystem that blkid can" \
                "read (blank, or a read error): ensure would make one only on a blank volume"
            return 0
            ;;
        *) die "cannot check: blkid -p $DEVICE exit status $PROBE_STATUS: $PROBE_SUMMARY" ;;
    esac
    if [[ -n $PROBE_PTTYPE || $PROBE_TYPE != "$FSTYPE" ]]; then
        drift filesystem "volume $VOLUME_ID ($DEVICE) holds ${PROBE_SUMMARY:-nothing known}," \
            "not an $FSTYPE filesystem"
        return 0
    fi
    FS_UUID=$PROBE_UUID
}

# check_mount: the volume is mounted on MOUNT_PATH, read-write. Sets MOUNTED_FROM_DEVICE.
check_mount() {
    local id _parent _number root target options rest mount_options="" super_options=""
    local mounted_root=/
    MOUNTED_FROM_DEVICE=0
    mount_state
    if [[ -z $MOUNTED_NUMBER ]]; then
        drift mount "$MOUNT_PATH is not mounted (ensure mounts $DEVICE there)"
        return 0
    fi
    if [[ $MOUNTED_NUMBER != "$DEVICE_NUMBER" ]]; then
        drift mount "$MOUNT_PATH is a mount of device $MOUNTED_NUMBER, not of volume" \
            "$VOLUME_ID ($DEVICE, $DEVICE_NUMBER)"
        return 0
    fi
    MOUNTED_FROM_DEVICE=1
    # The mount in use (mount_state's MOUNTED_ID; without one, the last on the path): its own
    # options (field 6) and its superblock's (the last field); either can be ro (an ext4 error
    # remounts it ro).
    while read -r id _parent _number root target options rest; do
        if [[ ${MOUNTED_ID:-$id} == "$id" && $target == "$MOUNT_PATH" ]]; then
            mount_options=$options
            super_options=${rest##* }
            mounted_root=$root
        fi
    done </proc/self/mountinfo
    # A bind mount of a directory of the volume has the same device: its root tells them apart.
    if [[ $mounted_root != / ]]; then
        drift mount "$MOUNT_PATH mounts ${mounted_root//\\040/ } of volume $VOLUME_ID, not" \
            "the volume's root (a bind mount?)"
    fi
    if [[ ,$mount_options, == *,ro,* || ,$super_options, == *,ro,* ]]; then
        drift mount "$MOUNT_PATH is mounted read-only (mount options $mount_options," \
            "filesystem $super_options; an ext4 error remounts it so: see dmesg)"
    fi
}

check_fstab() {
    local entry
    local -a found=()
    [[ -n $FS_UUID ]] || return 0 # (no filesystem: reported, and no line to expect)
    fstab_line
    if [[ -f /etc/fstab ]]; then
        while IFS= read -r entry; do
            if [[ $entry =~ $FSTAB_ENTRY && ${BASH_REMATCH[1]} == "$MOUNT_PATH" ]]; then
                found+=("$entry")
            fi
        done </etc/fstab
    fi
    if ((${#found[@]} == 0)); then
        drift fstab "/etc/fstab has no line for $MOUNT_PATH, so it is not mounted at boot" \
            "(ensure writes '$FSTAB_LINE')"
    elif ((${#found[@]} > 1)) || [[ ${found[0]} != "$FSTAB_LINE" ]]; then
        drift fstab "/etc/fstab has '$(printf '%s' "${found[0]}"; printf "' and '%s" \
            "${found[@]:1}")' for $MOUNT_PATH; ensure writes '$FSTAB_LINE'"
    fi
}

check_size() {
    local wanted=$((SIZE_GIB * GIB))
    device_size
    if ((DEVICE_SIZE < wanted)); then
        drift size "volume $VOLUME_ID is $DEVICE_SIZE bytes here, less than the declared" \
            "${SIZE_GIB} GiB ($wanted bytes): the extend has not reached this server"
    fi
    [[ -n $FS_UUID ]] || return 0
    filesystem_size
    filesystem_fills_volume "$DEVICE_SIZE"
    ((FILLS)) ||
        drift size "the filesystem is $((BLOCK_COUNT * BLOCK_SIZE)) bytes on a volume of" \
            "$DEVICE_SIZE bytes: not grown (ensure grows it online)"
}

# lines_difference WANTED CURRENT: what CURRENT lacks and has besides, line by line, in
# DIFFERENCE (empty if the same lines).
lines_difference() {
    local missing extra
    missing=$(comm -23 <(sort <<<"$1") <(sort <<<"$2") | sed "/^$/d; s/.*/'&'/" | paste -sd ',' -)
    extra=$(comm -13 <(sort <<<"$1") <(sort <<<"$2") | sed "/^$/d; s/.*/'&'/" | paste -sd ',' -)
    DIFFERENCE="${missing:+it lacks ${missing//\',\'/\', \'}}${missing:+${extra:+; }}"
    DIFFERENCE+="${extra:+it has ${extra//\',\'/\', \'} besides}"
}

check_nfs() {
    local file=$EXPORTS_DIR/$NAME.exports current="" address level
    local -A WANTED=() SERVED=()
    local -a WANTED_ORDER=()
    command -v exportfs >/dev/null ||
        die "cannot check: exportfs is not installed on this server: install nfs-kernel-server."
    wanted_exports_text
    if [[ ! -f $file ]]; then
        drift exports-file "$file is missing (ensure writes it)"
    else
        IFS= read -r -d '' current <"$file" || true
        if [[ $current != "$EXPORTS_TEXT" ]]; then
            lines_difference "$EXPORTS_TEXT" "$current"
            drift exports-file "$file is not what ensure writes: ${DIFFERENCE:-the same lines," \
                "in another order or spacing}"
        fi
    fi
    # What NFS really serves: mountd's table, which exportfs writes (-r, -u, -o alike).
    nfs_clients_of "$ETAB"
    while read -r address level; do
        [[ -z $address ]] || SERVED[$address]=$level
    done <<<"$NFS_CLIENTS"
    if ((${#WANTED[@]})) && ((${#SERVED[@]} == 0)); then
        drift export "$MOUNT_PATH is not exported over NFS ($ETAB has no entry for it)"
    else
        for address in ${WANTED_ORDER[@]+"${WANTED_ORDER[@]}"}; do
            level=${SERVED[$address]-}
            if [[ -z $level ]]; then
                drift client "$address is declared ${WANTED[$address]} but not exported to"
            elif [[ $level != "${WANTED[$address]}" ]]; then
                drift client "$address is exported $level, declared ${WANTED[$address]}"
            fi
        done
    fi
    for address in "${!SERVED[@]}"; do
        if [[ -z ${WANTED[$address]+set} ]]; then
            drift client "$address is exported ${SERVED[$address]} but has no access rule"
        fi
    done
    systemctl is-active --quiet nfs-kernel-server </dev/null ||
        drift nfs-server "nfs-kernel-server is not running: NFS serves nothing"
}

# cifs_hosts_difference WANTED CURRENT: the clients' drift between two "hosts allow" values.
cifs_hosts_difference() {
    local host wanted=" ${1//,/ } " current=" ${2//,/ } " declared
    local -a wanted_hosts current_hosts
    # Split into arrays, never by an unquoted expansion: a hand-made "*" must stay a word,
    # not become the names of the files in the current directory.
    IFS=', ' read -r -a wanted_hosts <<<"$1"
    IFS=', ' read -r -a current_hosts <<<"$2"
    cifs_addresses
    declared=" $ADDRESSES "
    for host in ${wanted_hosts[@]+"${wanted_hosts[@]}"}; do
        [[ $current != *" $host "* ]] || continue
        if [[ $declared == *" $host "* ]]; then
            drift client "$host is declared but not in the Samba share's hosts allow"
        else
            drift client "hosts allow lacks $host (ensure sets it)"
        fi
    done
    for host in ${current_hosts[@]+"${current_hosts[@]}"}; do
        if [[ $wanted != *" $host "* ]]; then
            drift client "$host is in the Samba share's hosts allow but has no access rule"
        fi
    done
}

check_cifs() {
    local line param value current known="|"
    command -v net >/dev/null ||
        die "cannot check: net (samba-common-bin) is not installed on this server."
    wanted_cifs_section
    cifs_current_section
    if [[ -z $CURRENT_SECTION ]]; then
        drift samba "the Samba registry has no share $NAME (net conf showshare $NAME):" \
            "$MOUNT_PATH is not exported over CIFS"
    else
        while IFS= read -r line; do
            [[ $line == $'\t'*' = '* ]] || continue
            param=${line#$'\t'}
            value=${param#* = }
            param=${param%% = *}
            known+="$param|"
            cifs_parameter "$CURRENT_SECTION" "$param"
            current=$PARAM_VALUE
            [[ $current != "$value" ]] || continue
            case $param in
                'hosts allow') cifs_hosts_difference "$value" "$current" ;;
                'read only')
                    drift client "the Samba share has read only = ${current:-(unset)}, but its" \
                        "clients are declared $([[ $value == yes ]] && echo ro || echo rw)" ;;
                *)
                    drift samba "$param is '${current:-(unset)}' in the Samba share; ensure" \
                        "sets '$value'" ;;
            esac
        done <<<"$WANTED_SECTION"
        while IFS= read -r line; do
            [[ $line == $'\t'*' = '* ]] || continue
            param=${line#$'\t'}
            param=${param%% = *}
            if [[ $known != *"|$param|"* ]]; then
                drift samba "the Samba share has '${line#$'\t'}', which ensure does not set"
            fi
        done <<<"$CURRENT_SECTION"
    fi
    systemctl is-active --quiet smbd </dev/null ||
        drift smbd "smbd is not running: CIFS serves nothing"
}

check_space() {
    local report used available size inodes_used inodes_free
    report=$(df --output=pcent,avail,size,ipcent,iavail -B1M -- "$MOUNT_PATH" </dev/null 2>&1) ||
        die "cannot check: df $MOUNT_PATH failed: ${report//$'\n'/; }"
    read -r used available size inodes_used inodes_free <<<"${report##*$'\n'}"
    used=${used%\%} inodes_used=${inodes_used%\%}
    if [[ $used =~ ^[0-9]+$ ]] && ((used >= FULL_PERCENT)); then
        drift space "$MOUNT_PATH is $used% full ($available MiB free of $size MiB; reported" \
            "from $FULL_PERCENT%): writes fail when it is full; grow the share (its size)"
    fi
    if [[ $inodes_free == 0 ]] ||
        { [[ $inodes_used =~ ^[0-9]+$ ]] && ((inodes_used >= FULL_PERCENT)); }; then
        drift inodes "$MOUNT_PATH has used $inodes_used% of its inodes ($inodes_free free;" \
            "reported from $FULL_PERCENT%): no new file can be made when none is free"
    fi
}

check_share() {
    DRIFTS=()
    log "check: volume $VOLUME_ID, ${PROTOCOL^^}, ${SIZE_GIB} GiB, $FSTYPE on $MOUNT_PATH" \
        "(changes nothing)"
    check_device
    check_filesystem
    check_mount
    check_fstab
    check_size
    "check_$PROTOCOL"
    if ((MOUNTED_FROM_DEVICE)); then
        check_space
    fi
    if ((${#DRIFTS[@]})); then
        printf '%s\n' "${DRIFTS[@]}"
        exit 3
    fi
    printf 'ok %s\n' "$NAME"
}

# --- actions ------------------------------------------------------------------------------

ensure_share() {
    log "ensure: volume $VOLUME_ID, ${PROTOCOL^^}, ${SIZE_GIB} GiB, $FSTYPE on $MOUNT_PATH"
    refuse_resolved_mount_root
    mount_state
    if ((MOUNTED_LIVE)); then
        cut_access
    else
        # Not mounted (or its volume gone): nothing may point at it while it is not.
        withdraw_share
    fi
    find_device
    with_lock "volume-${VOLUME_ID:0:20}" ensure_filesystem_and_mount
    ensure_fstab
    # Rules before size: a stalled or failed extend never delays them.
    "export_$PROTOCOL"
    grow_filesystem
    log "ready"
}

ensure_filesystem_and_mount() {
    check_mount_point
    ensure_filesystem
    # (A volume mounted on the share's path is the share's: its UUID is settled. The lock is
    # a program start, so it is taken only when there is something to settle.)
    ((ALREADY_MOUNTED)) || with_lock filesystem-uuids ensure_own_uuid
    ensure_mounted
}

delete_share() {
    log "delete: unexport and unmount $MOUNT_PATH (the data on the volume is kept)"
    mount_state
    if [[ -n $MOUNTED_NUMBER ]]; then
        refuse_if_in_use "$MOUNTED_NUMBER" "delete the share"
    fi
    withdraw_share
    if [[ ${MOUNTED_NUMBER%%:*} == 0 ]]; then
        # Not a volume (tmpfs, say, mounted by hand): unmounting would lose what it holds,
        # and it is not what Nova detaches next.
        log "warning: left $MOUNT_PATH mounted: it holds a filesystem without a device" \
            "($MOUNTED_NUMBER, see 'findmnt $MOUNT_PATH'), not the share's volume"
    else
        unmount
        checkpoint unmounted
    fi
    refuse_hidden_mount
    remove_mount_point
    log "deleted"
}

main() {
    trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR
    trap cleanup EXIT
    cd / # hold no directory that an unmount needs
    parse_args "$@"
    if [[ $ACTION == check ]]; then
        with_read_lock "share-$NAME" check_share
        return 0
    fi
    own_directory "$RUN_DIR"
    with_lock "share-$NAME" "${ACTION}_share"
}

main "$@"
