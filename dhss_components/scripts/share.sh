#!/bin/bash
# share.sh: make one Cinder volume a mounted, exported share on the service instance, or undo it.
#
# Runs as root on the service instance (the Share component sends it through
# `sudo -n bash -s -- ensure|delete ...` with the script itself on stdin). It does what Manila's
# generic driver does for a share (mkfs, mount, fstab, exportfs / net conf), but:
#   * the volume is found by its serial (/dev/disk/by-id/virtio-<volume id[:20]>), never by a
#     /dev/vdX name that Nova guessed;
#   * mkfs runs only on a volume with no signature at all: a filesystem, partition table, LVM
#     or swap signature is never overwritten;
#   * every step is safe to run twice, and "ensure" makes the guest match the arguments exactly
#     (a removed access rule is gone);
#   * an online extend grows the mounted filesystem without cutting access;
#   * a lock (flock) guards every file that two shares share (/etc/fstab, the NFS export table,
#     the Samba registry), so shares can be created and deleted in parallel.
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

readonly LOCK_DIR=/run/lock
readonly FSTAB_LOCK=$LOCK_DIR/dhss-fstab.lock
readonly EXPORTS_LOCK=$LOCK_DIR/dhss-exports.lock
readonly SAMBA_LOCK=$LOCK_DIR/dhss-samba.lock
readonly LOCK_TIMEOUT=600
readonly EXPORTS_DIR=/etc/exports.d
# A filesystem made here whose share root still needs its first-mount chmod 777.
readonly NEW_FILESYSTEMS_DIR=/var/lib/dhss-share/new-filesystems
readonly GIB=1073741824

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

log() {
    printf 'share %s: %s\n' "${NAME:-?}" "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

usage() {
    cat >&2 <<'EOF'
usage: share.sh ensure --name NAME --volume-id ID --protocol nfs|cifs --size-gib N
                       [--mount-root DIR] [--fstype ext4|ext3] [--device-timeout SECONDS]
                       [--client rw|ro:ADDRESS]...
       share.sh delete --name NAME [--protocol nfs|cifs] [--mount-root DIR]

ensure: find the volume by its serial, make a filesystem only if the volume is blank, mount it
        on MOUNT_ROOT/NAME (and in /etc/fstab), grow the filesystem to the volume, and export it
        to exactly the given clients (NFS: Manila's client forms; CIFS: addresses).
delete: unexport, unmount, drop the fstab line; the data on the volume is left as it is.
EOF
}

usage_error() {
    log "ERROR: $*"
    usage
    exit 2
}

on_error() {
    local status=$1 line=$2 command=$3
    log "ERROR: '$command' failed with exit status $status (share.sh line $line);" \
        "see the messages above. Every step is safe to re-run once the cause is fixed."
}

cleanup() {
    if ((${#TEMP_FILES[@]})); then
        rm -f -- "${TEMP_FILES[@]}"
    fi
}

# --- arguments ----------------------------------------------------------------------------

parse_args() {
    ACTION=${1-}
    case $ACTION in
        ensure | delete) shift ;;
        -h | --help) usage; exit 0 ;;
        "") usage_error "missing action: the first argument must be 'ensure' or 'delete'" ;;
        *) usage_error "unknown action '$ACTION': the first argument must be 'ensure' or 'delete'" ;;
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
    MOUNT_PATH=$MOUNT_ROOT/$NAME
    if [[ -n $PROTOCOL && $PROTOCOL != nfs && $PROTOCOL != cifs ]]; then
        usage_error "invalid --protocol '$PROTOCOL': use nfs or cifs"
    fi
    [[ $ACTION == ensure ]] || return 0

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
        cifs_read_only >/dev/null
    fi
}


# --- locks and files ----------------------------------------------------------------------

# with_lock FILE COMMAND...: run COMMAND while holding an exclusive flock on FILE. If COMMAND
# fails, set -e ends the script and the lock goes with the process.
with_lock() {
    local file=$1 fd
    shift
    exec {fd}>"$file"
    flock -w "$LOCK_TIMEOUT" "$fd" ||
        die "waited ${LOCK_TIMEOUT}s for $file: another share operation holds it." \
            "Find it with 'fuser -v $file' and run again when it is done."
    "$@"
    exec {fd}>&-
}

# replace_file TARGET TEMP: put TEMP in place of TARGET in one rename, keeping TARGET's mode and
# owner. (Callers compare the contents first, in bash. Functions here report through variables,
# never through their exit status: set -e does not apply inside a function called as a
# condition, so a failure there would go unnoticed.)
replace_file() {
    local target=$1 temp=$2
    if [[ -f $target ]]; then
        chmod --reference="$target" -- "$temp"
        chown --reference="$target" -- "$temp"
    else
        chmod 644 -- "$temp"
    fi
    mv -f -- "$temp" "$target"
}

# new_temp_file TARGET: a temporary file next to TARGET (same filesystem, so mv is atomic).
new_temp_file() {
    local target=$1 temp
    temp=$(mktemp -- "${target%/*}/.${target##*/}.dhss.XXXXXX")
    TEMP_FILES+=("$temp")
    printf '%s' "$temp"
}

# --- block device and filesystem ----------------------------------------------------------

find_device() {
    local by_id=/dev/disk/by-id/virtio-${VOLUME_ID:0:20}
    local deadline=$((SECONDS + DEVICE_TIMEOUT)) remaining
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
    DEVICE=$by_id
    KERNEL_NAME=$(readlink -f -- "$DEVICE")
    KERNEL_NAME=${KERNEL_NAME##*/}
    read -r DEVICE_NUMBER </sys/class/block/"$KERNEL_NAME"/dev
    log "found volume $VOLUME_ID at $DEVICE (now $KERNEL_NAME, $DEVICE_NUMBER)"
}

# probe_device: low-level probe (blkid -p reads the device itself, no cache). Sets PROBE_TYPE,
# PROBE_PTTYPE, PROBE_UUID, PROBE_STATUS (0 found, 2 nothing found, 8 ambivalent, else an
# error) and PROBE_SUMMARY (what blkid said, on one line).
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

ensure_filesystem() {
    probe_device
    case $PROBE_STATUS in
        0) ;;
        2) make_filesystem; return 0 ;;
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
    # The UUID is chosen first and noted on the root disk before mkfs, so that a run cut short
    # between mkfs and the first mount still finishes the first-mount chmod when run again.
    FS_UUID=$(</proc/sys/kernel/random/uuid)
    mkdir -p -- "$NEW_FILESYSTEMS_DIR"
    : >"$NEW_FILESYSTEMS_DIR/$FS_UUID"
    log "volume $VOLUME_ID is blank (no signature on $DEVICE): making an $FSTYPE filesystem"
    "mkfs.$FSTYPE" -q -U "$FS_UUID" -E lazy_itable_init=1,lazy_journal_init=1 "$DEVICE" \
        </dev/null >&2
    # Manila's set_zero_reserved_blocks: a share is for its users, not for root.
    tune2fs -m 0 "$DEVICE" </dev/null >/dev/null
    log "made $FSTYPE filesystem $FS_UUID with no reserved blocks"
}

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

# check_mount_point: before anything is written, refuse a mount point that holds another
# device, and a volume that is mounted somewhere else. Sets ALREADY_MOUNTED.
check_mount_point() {
    local mounted target
    ALREADY_MOUNTED=0
    if mounted=$(mountpoint -d -- "$MOUNT_PATH" 2>/dev/null); then
        [[ $mounted == "$DEVICE_NUMBER" ]] ||
            die "$MOUNT_PATH is already a mount point of device $mounted, not of volume" \
                "$VOLUME_ID ($DEVICE, $DEVICE_NUMBER). Nothing was changed. Check 'findmnt" \
                "$MOUNT_PATH': if another share or a hand-made mount uses this path, unmount it;" \
                "if the share's volume changed, delete the share first."
        ALREADY_MOUNTED=1
        return 0
    fi
    mount_points_of "$DEVICE_NUMBER"
    for target in ${MOUNT_POINTS[@]+"${MOUNT_POINTS[@]}"}; do
        die "volume $VOLUME_ID ($DEVICE) is already mounted on $target, not on" \
            "$MOUNT_PATH. Nothing was changed. Two shares cannot use one volume:" \
            "check the share's volume, or unmount $target."
    done
}

ensure_mounted() {
    if ((ALREADY_MOUNTED)); then
        log "$DEVICE is already mounted on $MOUNT_PATH"
    else
        mkdir -p -- "$MOUNT_PATH"
        local -a hidden
        hidden=("$MOUNT_PATH"/* "$MOUNT_PATH"/.[!.]*)
        if [[ -e ${hidden[0]} || -e ${hidden[1]} ]]; then
            log "warning: $MOUNT_PATH holds files on the root disk; the mount hides them"
        fi
        mount -t "$FSTYPE" -- "$DEVICE" "$MOUNT_PATH" </dev/null
        log "mounted $DEVICE on $MOUNT_PATH"
    fi
    if [[ -e $NEW_FILESYSTEMS_DIR/$FS_UUID ]]; then
        # Manila's chmod 777: guests (nobody over CIFS, any uid over NFS) must be able to write.
        chmod 777 -- "$MOUNT_PATH"
        rm -f -- "${NEW_FILESYSTEMS_DIR:?}/$FS_UUID"
        log "new filesystem: made the share root $MOUNT_PATH writable by all (777)"
    fi
}

# set_fstab_entry PATH LINE: make LINE the one /etc/fstab entry for PATH (in place of any other
# entry for PATH, keeping its position); with an empty LINE, drop the entries for PATH.
# Sets FSTAB_CHANGED.
set_fstab_entry() {
    local path=$1 line=$2 entry current="" wanted="" placed=0 temp
    local entry_pattern='^[[:space:]]*[^#[:space:]][^[:space:]]*[[:space:]]+([^[:space:]]+)'
    local -a entries=()
    FSTAB_CHANGED=0
    if [[ -f /etc/fstab ]]; then
        mapfile -t entries </etc/fstab
    fi
    for entry in ${entries[@]+"${entries[@]}"}; do
        current+=$entry$'\n'
        if [[ $entry =~ $entry_pattern && ${BASH_REMATCH[1]} == "$path" ]]; then
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
    temp=$(new_temp_file /etc/fstab)
    printf '%s' "$wanted" >"$temp"
    replace_file /etc/fstab "$temp"
    FSTAB_CHANGED=1
}

ensure_fstab() {
    with_lock "$FSTAB_LOCK" set_fstab_entry "$MOUNT_PATH" \
        "UUID=$FS_UUID $MOUNT_PATH $FSTYPE defaults,nofail 0 2"
    # (No systemctl daemon-reload: systemd reads /etc/fstab at boot, which is when this line
    # matters, and a reload costs seconds on a busy service instance.)
    if ((FSTAB_CHANGED)); then
        log "/etc/fstab mounts UUID=$FS_UUID on $MOUNT_PATH at boot"
    else
        log "/etc/fstab already mounts UUID=$FS_UUID on $MOUNT_PATH"
    fi
}

# device_size: sets DEVICE_SIZE to the size in bytes that the kernel sees now (it follows an
# online extend).
device_size() {
    local sectors
    read -r sectors </sys/class/block/"$KERNEL_NAME"/size
    DEVICE_SIZE=$((sectors * 512))
}

grow_filesystem() {
    local wanted=$((SIZE_GIB * GIB)) size deadline=$((SECONDS + DEVICE_TIMEOUT))
    device_size
    size=$DEVICE_SIZE
    if ((size < wanted)); then
        log "waiting up to ${DEVICE_TIMEOUT}s for $DEVICE to reach ${SIZE_GIB} GiB (now $size bytes)"
    fi
    while ((size < wanted)); do
        ((SECONDS < deadline)) ||
            die "volume $VOLUME_ID ($DEVICE) is $size bytes, smaller than the share's size" \
                "${SIZE_GIB} GiB, after ${DEVICE_TIMEOUT}s. Check that the Cinder extend" \
                "finished (openstack volume show $VOLUME_ID) and that this server sees the new" \
                "size ('blockdev --getsize64 $DEVICE', 'dmesg'), then run again."
        sleep 1
        device_size
        size=$DEVICE_SIZE
    done
    local block_count=0 block_size=0 key value
    while IFS=':' read -r key value; do
        case $key in
            'Block count') block_count=${value// /} ;;
            'Block size') block_size=${value// /} ;;
        esac
    done < <(dumpe2fs -h "$DEVICE" </dev/null 2>/dev/null)
    ((block_size > 0 && block_count > 0)) ||
        die "could not read the size of the filesystem on $DEVICE (dumpe2fs -h $DEVICE)."
    if ((size / block_size > block_count)); then
        log "growing the filesystem on $MOUNT_PATH online from $((block_count * block_size))" \
            "to $size bytes"
        resize2fs "$DEVICE" </dev/null >&2
        log "filesystem grown to $size bytes"
    else
        log "filesystem already fills the volume ($size bytes)"
    fi
}

# --- NFS ----------------------------------------------------------------------------------

# exports_line CLIENT: the exports(5) entry for one --client. Manila's client forms bracket IPv6
# ("[1001::1]/124", for `exportfs -o ... client:path`); in exports(5) the address goes bare.
# Manila's options, plus mp: export only while the volume is mounted there, never the bare
# directory on the root disk (after a reboot without the volume, say).
exports_line() {
    local level=${1%%:*} address=${1#*:}
    address=${address/\[/}
    address=${address/\]/}
    EXPORTS_LINE="$MOUNT_PATH $address($level,no_subtree_check,no_root_squash,mp)"
}

write_exports_file() {
    local file=$EXPORTS_DIR/$NAME.exports temp client wanted current=""
    wanted="# share $NAME: written by manila-dhss share.sh on every ensure; edits are lost"$'\n'
    if ((${#CLIENTS[@]} == 0)); then
        wanted+="# no access rules: $MOUNT_PATH is not exported"$'\n'
    fi
    for client in ${CLIENTS[@]+"${CLIENTS[@]}"}; do
        exports_line "$client"
        wanted+=$EXPORTS_LINE$'\n'
    done
    if [[ -f $file ]]; then
        IFS= read -r -d '' current <"$file" || true
    fi
    [[ $current != "$wanted" ]] || return 0
    [[ -d $EXPORTS_DIR ]] || mkdir -p -- "$EXPORTS_DIR"
    temp=$(new_temp_file "$file")
    printf '%s' "$wanted" >"$temp"
    replace_file "$file" "$temp"
    log "wrote $file"
}

ensure_nfs_server() {
    if ! systemctl is-active --quiet nfs-kernel-server </dev/null; then
        log "nfs-kernel-server is not running: starting it"
        systemctl start nfs-kernel-server </dev/null ||
            die "could not start nfs-kernel-server; see 'systemctl status nfs-kernel-server'" \
                "and 'journalctl -u nfs-server' on this server."
    fi
}

reexport_all() {
    exportfs -ra </dev/null >&2 ||
        die "exportfs -ra failed; see its messages above and check the files in $EXPORTS_DIR."
}

export_nfs_locked() {
    write_exports_file
    ensure_nfs_server
    reexport_all
}

export_nfs() {
    command -v exportfs >/dev/null ||
        die "exportfs is not installed on this server: install nfs-kernel-server."
    with_lock "$EXPORTS_LOCK" export_nfs_locked
    if ((${#CLIENTS[@]})); then
        log "exported $MOUNT_PATH over NFS to: ${CLIENTS[*]}"
    else
        log "no access rules: $MOUNT_PATH is not exported over NFS"
    fi
}

unexport_nfs_locked() {
    local file=$EXPORTS_DIR/$NAME.exports
    UNEXPORTED=0
    [[ -e $file ]] || return 0
    rm -f -- "$file"
    reexport_all
    UNEXPORTED=1
}

unexport_nfs() {
    command -v exportfs >/dev/null || return 0
    with_lock "$EXPORTS_LOCK" unexport_nfs_locked
    if ((UNEXPORTED)); then
        log "removed the NFS exports of $MOUNT_PATH"
    fi
    # Drop the NFSv4 opens and locks that clients hold on this filesystem, so that it can be
    # unmounted.
    if [[ -w /proc/fs/nfsd/unlock_filesystem ]] && mountpoint -q -- "$MOUNT_PATH"; then
        printf '%s\n' "$MOUNT_PATH" >/proc/fs/nfsd/unlock_filesystem 2>/dev/null || true
    fi
}

# --- CIFS (Samba registry, like Manila's CIFSHelperIPAccess) ------------------------------

# cifs_read_only: "yes" if every client is ro, "no" if every client is rw (or there is none).
# Samba's "read only" is per share, so a mix of rw and ro cannot be honoured.
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
    if ((ro)); then printf yes; else printf no; fi
}

cifs_hosts_allow() {
    local client addresses=()
    for client in ${CLIENTS[@]+"${CLIENTS[@]}"}; do
        addresses+=("${client#*:}")
    done
    if ((${#addresses[@]} == 0)); then
        printf '127.0.0.1' # Manila's default: nobody outside the server
    else
        printf '%s' "${addresses[*]}"
    fi
}

# cifs_share_section READ_ONLY HOSTS_ALLOW: the share's Samba section, in the form that
# `net conf showshare` prints. Manila's parameters (addshare writeable=y guest_ok=y, then
# browseable, create mask, hosts deny, hosts allow, read only), plus: refuse connections while
# the volume is not mounted, rather than serve the bare directory on the root disk.
cifs_share_section() {
    local read_only=$1 hosts_allow=$2
    printf '[%s]\n' "$NAME"
    printf '\t%s = %s\n' \
        path "$MOUNT_PATH" \
        'guest ok' yes \
        'read only' "$read_only" \
        browseable yes \
        'create mask' 0755 \
        'hosts deny' 0.0.0.0/0 \
        'hosts allow' "$hosts_allow" \
        'root preexec' "$(command -v mountpoint) -q $MOUNT_PATH" \
        'root preexec close' yes
}

# cifs_parameter SECTION PARAM: the value of PARAM in a section printed by net conf showshare.
cifs_parameter() {
    PARAM="$2" awk -F ' = ' '$1 == "\t" ENVIRON["PARAM"] { print $2 }' <<<"$1"
}

ensure_smbd() {
    if ! systemctl is-active --quiet smbd </dev/null; then
        log "smbd is not running: starting it"
        systemctl start smbd </dev/null ||
            die "could not start smbd; see 'systemctl status smbd' on this server."
    fi
}

# close_cifs_sessions: end the open sessions on the share. Samba checks "hosts allow" and
# "read only" when a client connects, so this is what makes a removed rule take effect on a
# client that is already connected (it reconnects, under the new rules).
close_cifs_sessions() {
    if systemctl is-active --quiet smbd </dev/null; then
        smbcontrol all close-share "$NAME" </dev/null >/dev/null 2>&1 || true
    fi
}

export_cifs_locked() {
    local wanted=$1 current="" temp
    ACCESS_CHANGED=0
    current=$(net conf showshare "$NAME" </dev/null 2>/dev/null) || current=""
    [[ $current != "$wanted" ]] || return 0
    temp=$(new_temp_file "$LOCK_DIR/dhss-samba-$NAME.conf")
    printf '%s\n' "$wanted" >"$temp"
    # One import replaces the whole section: exactly these parameters, nothing left over.
    net conf import "$temp" "$NAME" </dev/null >&2 ||
        die "net conf import of share $NAME failed. The Samba registry must be usable:" \
            "smb.conf needs 'include = registry' in [global] (as in Manila's service image);" \
            "check 'net conf list' and 'testparm -s' on this server."
    rm -f -- "$temp"
    if [[ -z $current ]]; then
        log "samba: added share $NAME for $MOUNT_PATH"
        return 0
    fi
    log "samba: updated share $NAME"
    if [[ $(cifs_parameter "$current" 'hosts allow') != "$(cifs_parameter "$wanted" 'hosts allow')" ||
        $(cifs_parameter "$current" 'read only') != "$(cifs_parameter "$wanted" 'read only')" ]]; then
        ACCESS_CHANGED=1
    fi
}

export_cifs() {
    local read_only hosts_allow
    command -v net >/dev/null || die "net (samba-common-bin) is not installed on this server."
    read_only=$(cifs_read_only)
    hosts_allow=$(cifs_hosts_allow)
    with_lock "$SAMBA_LOCK" export_cifs_locked "$(cifs_share_section "$read_only" "$hosts_allow")"
    ensure_smbd
    if ((ACCESS_CHANGED)); then
        close_cifs_sessions
        log "samba: closed the open sessions on $NAME so that the new rules apply to them"
    fi
    log "exported $MOUNT_PATH over CIFS as share $NAME to: $hosts_allow (read only: $read_only)"
}

unexport_cifs_locked() {
    UNEXPORTED=0
    net conf showshare "$NAME" </dev/null >/dev/null 2>&1 || return 0
    # (net also says "delete_share_security: Failed to delete entry" when the share had no
    # ACL of its own, which is the case here: not an error.)
    net conf delshare "$NAME" </dev/null 2>/dev/null ||
        die "net conf delshare $NAME failed; run it by hand to see why, then run again."
    UNEXPORTED=1
}

unexport_cifs() {
    command -v net >/dev/null || return 0
    with_lock "$SAMBA_LOCK" unexport_cifs_locked
    if ((UNEXPORTED)); then
        log "samba: removed share $NAME"
    fi
    close_cifs_sessions # so that the volume can be unmounted
}

# --- unmount ------------------------------------------------------------------------------

unmount() {
    local tries=0 error
    while mountpoint -q -- "$MOUNT_PATH"; do
        ((tries++ < 5)) || die "$MOUNT_PATH is still mounted after $tries unmounts; see" \
            "'findmnt $MOUNT_PATH' and 'fuser -vm $MOUNT_PATH'."
        sync -f -- "$MOUNT_PATH" || true
        if error=$(umount -- "$MOUNT_PATH" </dev/null 2>&1); then
            log "unmounted $MOUNT_PATH"
        else
            log "${error:-umount $MOUNT_PATH failed}: detaching it now (umount -l); the kernel" \
                "releases the filesystem when its last user closes it"
            umount -l -- "$MOUNT_PATH" </dev/null
        fi
    done
}

drop_fstab_entry() {
    with_lock "$FSTAB_LOCK" set_fstab_entry "$MOUNT_PATH" ""
    if ((FSTAB_CHANGED)); then
        log "removed $MOUNT_PATH from /etc/fstab"
    fi
}

remove_mount_point() {
    [[ -d $MOUNT_PATH ]] || return 0
    if rmdir -- "$MOUNT_PATH" 2>/dev/null; then
        log "removed the empty directory $MOUNT_PATH"
    else
        log "warning: left $MOUNT_PATH in place: it is not empty (files on the root disk)"
    fi
}

# --- actions ------------------------------------------------------------------------------

ensure_share() {
    log "ensure: volume $VOLUME_ID, ${PROTOCOL^^}, ${SIZE_GIB} GiB, $FSTYPE on $MOUNT_PATH"
    find_device
    with_lock "$LOCK_DIR/dhss-volume-${VOLUME_ID:0:20}.lock" ensure_filesystem_and_mount
    ensure_fstab
    grow_filesystem
    "export_$PROTOCOL"
    log "ready"
}

ensure_filesystem_and_mount() {
    check_mount_point
    ensure_filesystem
    ensure_mounted
}

delete_share() {
    log "delete: unexport and unmount $MOUNT_PATH (the data on the volume is kept)"
    # Without --protocol, both (a share of unknown protocol must not stay exported).
    if [[ $PROTOCOL != cifs ]]; then
        unexport_nfs
    fi
    if [[ $PROTOCOL != nfs ]]; then
        unexport_cifs
    fi
    unmount
    drop_fstab_entry
    remove_mount_point
    log "deleted"
}

main() {
    trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR
    trap cleanup EXIT
    parse_args "$@"
    [[ -d $LOCK_DIR ]] || mkdir -p -- "$LOCK_DIR"
    with_lock "$LOCK_DIR/dhss-share-$NAME.lock" "${ACTION}_share"
}

main "$@"
