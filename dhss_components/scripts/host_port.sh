#!/bin/bash
# Plug (or unplug) the manila-share host's port into the service or admin network, the way
# Manila's interface drivers do (manila/network/linux/interface.py), then set its IPv4
# addresses the way init_l3 does.
#
#   host_port.sh plug   --driver ovs|bridge|noop --device DEV --port-id ID --mac MAC
#                       [--cidr IP/PLEN]... [--bridge BR]
#   host_port.sh unplug --driver ovs|bridge|noop --device DEV --port-id ID [--bridge BR]
#
# Drivers:
#   ovs     an OVS internal port DEV on BR with Neutron's external-ids (OVSInterfaceDriver).
#   bridge  a veth pair: DEV (ns-...) carries the MAC and addresses; its peer tap... is left
#           for the Linux-bridge agent to enslave (BridgeInterfaceDriver).
#   noop    nothing at all, like NoopInterfaceDriver (whose init_l3 is a no-op too): the
#           operator has already connected the host to the network.
#
# The plug owns only what it adds. It changes this port's device and nothing else on the
# host: the device's global IPv4 addresses become exactly the --cidr list, and each subnet of
# the list gets two routes through the device, its halves (one bit longer). The kernel
# prefers a longer prefix whatever order routes are in, so traffic to the subnet leaves
# through this port (what Manila's clear_cidrs and pullup_route are for) while every other
# route to the subnet (the host's own NIC, another tenant's port) stays exactly as it was.
#
# What the plug makes is written to a state file, $STATE_DIR/DEV, *before* it is made, so a
# plug killed half-way is finished by running it again and undone by unplug. unplug removes
# what the state file lists, then the device; it never touches another device's routes or
# addresses. Without a state file (lost, or never written) it removes only a device that
# carries this port's identity: for OVS, external-ids:iface-id = the port id; for the
# bridge driver, the veth ns-X whose peer is tapX. plug is idempotent; unplug is safe to
# run twice and on a port that was never plugged.
#
# Manila's _remove_outdated_interfaces (unplugging any other tap* device that shares a
# subnet) is deliberately not done: a replaced host port is unplugged by its own delete.
#
# Runs as root. Otherwise each privileged command goes through `sudo -n`, so the caller
# needs passwordless sudo for ip and ovs-vsctl, and for install, mv and rm (the state files).
#
# dhss_components/host_port_script.py feeds this file to `bash -s` on stdin. So the file
# holds only settings and functions until its last line, `main "$@"`, and main points
# stdin at /dev/null before running anything, so no command can eat the script.
set -euo pipefail

# Root's own directory: nobody else can plant a file or a symlink where unplug reads what
# to remove. DHSS_HOST_PORT_STATE_DIR moves it (the tests give each namespace its own); the
# same checks apply wherever it is.
readonly DEFAULT_STATE_DIR=/var/lib/dhss-host-port
readonly LOCK_WAIT_SECONDS=60
# Manila runs add-port without a timeout; a dead ovs-vswitchd would then hang the deploy.
readonly OVS_PLUG_TIMEOUT_SECONDS=10
readonly OVS_UNPLUG_TIMEOUT_SECONDS=2
readonly DEVICE_WAIT_TENTHS=50

ACTION=""
DRIVER=""
DEVICE=""
PORT_ID=""
MAC=""
BRIDGE="br-int"
CIDRS=()
STATE_DIR=""
STATE_FILE=""
# What the state file lists: how the link came to be ours (created or adopted), the
# addresses (IP/PLEN) and the routes ("PREFIX SRC", through DEVICE) this port owns.
STATE_LINK=""
STATE_ADDRESSES=()
STATE_ROUTES=()

log() {
    printf 'host_port %s %s: %s\n' "${ACTION:-?}" "${DEVICE:-?}" "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

usage_error() {
    printf 'host_port: %s\n' "$*" >&2
    printf '%s\n' \
        'usage: host_port.sh plug --driver ovs|bridge|noop --device DEV --port-id ID --mac MAC' \
        '           [--cidr IP/PLEN]... [--bridge BR]' \
        '       host_port.sh unplug --driver ovs|bridge|noop --device DEV --port-id ID [--bridge BR]' >&2
    exit 2
}

parse_args() {
    [[ $# -gt 0 ]] || usage_error "missing action"
    ACTION=$1
    shift
    case $ACTION in
        plug | unplug) ;;
        *) usage_error "unknown action '$ACTION' (expected plug or unplug)" ;;
    esac
    while [[ $# -gt 0 ]]; do
        [[ $# -ge 2 ]] || usage_error "option $1 needs a value"
        case $1 in
            --driver) DRIVER=$2 ;;
            --device) DEVICE=$2 ;;
            --port-id) PORT_ID=$2 ;;
            --mac) MAC=${2,,} ;;
            --bridge) BRIDGE=$2 ;;
            --cidr) CIDRS+=("$2") ;;
            *) usage_error "unknown option $1" ;;
        esac
        shift 2
    done
    case $DRIVER in
        ovs | bridge | noop) ;;
        "") usage_error "--driver is required" ;;
        *) usage_error "unknown driver '$DRIVER' (expected ovs, bridge or noop)" ;;
    esac
    [[ -n $DEVICE ]] || usage_error "--device is required"
    check_interface_name "$DEVICE"
    check_interface_name "$BRIDGE"
    [[ -n $PORT_ID ]] || usage_error "--port-id is required"
    [[ $PORT_ID =~ ^[A-Za-z0-9_-]+$ ]] ||
        usage_error "--port-id '$PORT_ID' is not a Neutron port id (letters, digits, - and _)"
    if [[ $ACTION == plug ]]; then
        [[ $MAC =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] ||
            usage_error "--mac '$MAC' is not a MAC address like fa:16:3e:12:34:56"
        local cidr
        for cidr in ${CIDRS[@]+"${CIDRS[@]}"}; do
            is_ipv4_cidr "$cidr" ||
                usage_error "'$cidr' is not an IPv4 address with a prefix length like 10.254.0.2/28"
        done
    fi
    if [[ $DRIVER == bridge && $DEVICE != ns-* ]]; then
        usage_error "the bridge driver's device name starts with ns- (got $DEVICE)"
    fi
}

check_interface_name() {
    [[ $1 =~ ^[A-Za-z0-9_.-]{1,15}$ ]] ||
        usage_error "'$1' is not a Linux interface name (1-15 characters of A-Z a-z 0-9 _ . -)"
}

is_ipv4_cidr() {
    [[ $1 =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/([0-9]{1,2})$ ]] || return 1
    local i
    for i in 1 2 3 4; do
        ((10#${BASH_REMATCH[i]} <= 255)) || return 1
    done
    ((10#${BASH_REMATCH[5]} <= 32))
}

ipv4_to_int() {
    local a b c d
    IFS=. read -r a b c d <<<"$1"
    printf '%d\n' $(((10#$a << 24) | (10#$b << 16) | (10#$c << 8) | 10#$d))
}

int_to_ipv4() {
    printf '%d.%d.%d.%d\n' $((($1 >> 24) & 255)) $((($1 >> 16) & 255)) $((($1 >> 8) & 255)) $(($1 & 255))
}

# The two halves of the subnet of IP/PLEN, one a line ("NET/PLEN+1"); none for a /32.
subnet_halves() {
    local ip=${1%/*} plen=${1#*/} address network size
    ((plen < 32)) || return 0
    address=$(ipv4_to_int "$ip")
    size=$((1 << (31 - plen)))
    network=$((address & ~(2 * size - 1) & 0xffffffff))
    printf '%s/%d\n' "$(int_to_ipv4 "$network")" $((plen + 1)) \
        "$(int_to_ipv4 $((network + size)))" $((plen + 1))
}

# Run a command that changes the host as root.
privileged() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    else
        sudo -n "$@"
    fi
}

check_privileges() {
    [[ $EUID -eq 0 ]] && return 0
    command -v sudo >/dev/null ||
        die "not root and sudo is not installed: run the plug as root on the manila-share host"
    sudo -n true ||
        die "not root and passwordless sudo is not allowed: run as root, or allow 'sudo -n' for ip, ovs-vsctl, install, mv and rm"
}

# --- the state directory and file ------------------------------------------------------------

# A directory only root can change: owned by root, not writable by group or others, unless
# sticky (like /tmp, where nobody can rename or delete what root put there).
root_controlled_dir() {
    local owner mode
    read -r owner mode < <(stat -c '%u %a' -- "$1") || return 1
    [[ $owner == 0 ]] || return 1
    (((8#$mode & 8#1000) || !(8#$mode & 8#022)))
}

# Refuse a state directory that anyone but root could redirect or fill: a symlink, or one
# under a directory another user can change.
check_state_dir_trusted() {
    local dir=$1 parent
    [[ $dir == /* ]] || die "state directory $dir is not an absolute path"
    parent=$(realpath -m -- "$(dirname -- "$dir")")
    while :; do
        if [[ -d $parent ]]; then
            root_controlled_dir "$parent" ||
                die "state directory $dir is under $parent, which a user other than root can change: use a directory only root can write (chown root: $parent; chmod go-w $parent)"
        fi
        [[ $parent == / ]] && break
        parent=$(dirname -- "$parent")
    done
    if [[ -L $dir ]]; then
        die "state directory $dir is a symlink: it is not followed; remove it, and the plug makes the directory itself"
    fi
}

open_state() {
    STATE_DIR=${DHSS_HOST_PORT_STATE_DIR:-$DEFAULT_STATE_DIR}
    STATE_FILE=$STATE_DIR/$DEVICE
    check_state_dir_trusted "$STATE_DIR"
    if [[ ! -e $STATE_DIR ]]; then
        privileged install -d -m 0755 -- "$STATE_DIR" ||
            die "could not create the state directory $STATE_DIR"
    fi
    [[ -d $STATE_DIR && ! -L $STATE_DIR ]] || die "state path $STATE_DIR is not a directory"
    root_controlled_dir "$STATE_DIR" ||
        die "state directory $STATE_DIR can be changed by a user other than root: chown root: $STATE_DIR; chmod 0755 $STATE_DIR"
    take_lock
    read_state
}

# One lock for every host-port operation on this host, held on the state directory itself
# (no lock file anyone else could create first): two plugs must not interleave (Manila holds
# service_instance_plug_interface_in_host around plug).
take_lock() {
    local lock_fd
    exec {lock_fd}<"$STATE_DIR" || die "cannot open the state directory $STATE_DIR to lock it"
    flock -w "$LOCK_WAIT_SECONDS" "$lock_fd" ||
        die "another host-port plug held $STATE_DIR for ${LOCK_WAIT_SECONDS}s: look for a stuck host_port.sh (fuser $STATE_DIR)"
}

read_state() {
    STATE_LINK=""
    STATE_ADDRESSES=()
    STATE_ROUTES=()
    if [[ -L $STATE_FILE ]]; then
        die "state file $STATE_FILE is a symlink: it is not followed; remove it (unplug then removes only what carries this port's identity)"
    fi
    [[ -e $STATE_FILE ]] || return 0
    [[ -f $STATE_FILE && $(stat -c %u -- "$STATE_FILE") == 0 ]] ||
        die "state file $STATE_FILE is not a regular file owned by root: remove it"
    local kind first second port_id=""
    while read -r kind first second; do
        case $kind in
            "" | "#"*) ;;
            port-id) port_id=$first ;;
            link)
                [[ $first == created || $first == adopted ]] || die "state file $STATE_FILE: bad line 'link $first'"
                STATE_LINK=$first
                ;;
            address)
                is_ipv4_cidr "$first" || die "state file $STATE_FILE: bad line 'address $first'"
                STATE_ADDRESSES+=("$first")
                ;;
            route)
                if ! is_ipv4_cidr "$first" || ! is_ipv4_cidr "$second/32"; then
                    die "state file $STATE_FILE: bad line 'route $first $second'"
                fi
                STATE_ROUTES+=("$first $second")
                ;;
            *) die "state file $STATE_FILE: unknown line '$kind': remove the file if it is not this plug's" ;;
        esac
    done <"$STATE_FILE"
    [[ $port_id == "$PORT_ID" ]] ||
        die "state file $STATE_FILE belongs to port ${port_id:-?}, not $PORT_ID: two ports share device name $DEVICE; unplug the other port first"
}

write_state() {
    local tmp=$STATE_DIR/.$DEVICE.new entry content
    content="# host_port.sh: what plug made on this host for $DEVICE; unplug removes exactly this."
    content+=$'\n'"port-id $PORT_ID"
    [[ -z $STATE_LINK ]] || content+=$'\n'"link $STATE_LINK"
    for entry in ${STATE_ADDRESSES[@]+"${STATE_ADDRESSES[@]}"}; do
        content+=$'\n'"address $entry"
    done
    for entry in ${STATE_ROUTES[@]+"${STATE_ROUTES[@]}"}; do
        content+=$'\n'"route $entry"
    done
    # Unchanged (a plug run again): leave the file alone.
    [[ ! -f $STATE_FILE || $(<"$STATE_FILE") != "$content" ]] || return 0
    privileged install -m 0644 /dev/stdin "$tmp" <<<"$content" ||
        die "could not write $tmp: is $STATE_DIR on a read-only or full filesystem?"
    privileged mv -fT -- "$tmp" "$STATE_FILE" || die "could not replace $STATE_FILE"
}

remove_state() {
    [[ -e $STATE_FILE ]] || return 0
    privileged rm -f -- "$STATE_FILE" || die "could not remove $STATE_FILE"
}

# --- devices ---------------------------------------------------------------------------------

device_exists() {
    ip -o link show dev "$1" >/dev/null 2>&1
}

device_mac() {
    ip -o link show dev "$1" | awk '{ for (i = 1; i < NF; i++) if ($i == "link/ether") print $(i + 1) }'
}

# Manila's BridgeInterfaceDriver names the root end of the veth by replacing the ns- prefix.
bridge_tap_name() {
    printf 'tap%s\n' "${DEVICE#ns-}"
}

# The iface-id OVS holds for an Interface named DEVICE; nothing if there is none.
ovs_iface_id() {
    local id
    id=$(privileged ovs-vsctl --timeout="$OVS_UNPLUG_TIMEOUT_SECONDS" --if-exists \
        get Interface "$DEVICE" external-ids:iface-id 2>/dev/null) || id=""
    id=${id#\"}
    printf '%s\n' "${id%\"}"
}

# Whose is DEVICE? "none" (no such device), "port" (it carries this port's identity, so this
# port's plug, or Manila's, made it) or "other" (left alone: it is not ours to change).
device_owner() {
    case $DRIVER in
        ovs)
            local id
            id=$(ovs_iface_id)
            if [[ -n $id ]]; then
                [[ $id == "$PORT_ID" ]] && echo port || echo other
            elif device_exists "$DEVICE"; then
                echo other
            else
                echo none
            fi
            ;;
        bridge)
            if ! device_exists "$DEVICE"; then
                echo none
            elif ip -o -d link show dev "$DEVICE" |
                grep -qE "^[0-9]+: $DEVICE@$(bridge_tap_name): .* veth "; then
                echo port
            else
                echo other
            fi
            ;;
    esac
}

wait_for_device() {
    local tries=0
    until device_exists "$1"; do
        ((++tries <= DEVICE_WAIT_TENTHS)) ||
            die "device $1 did not appear within $((DEVICE_WAIT_TENTHS / 10))s: check ovs-vswitchd's log (ovs-appctl vlog/list) and 'ovs-vsctl show'"
        sleep 0.1
    done
}

set_mac_if_differs() {
    local device=$1 current
    current=$(device_mac "$device")
    if [[ ${current,,} == "$MAC" ]]; then
        log "$device already has MAC $MAC"
        return 0
    fi
    log "setting MAC of $device to $MAC (was ${current:-none})"
    privileged ip link set dev "$device" address "$MAC" ||
        die "could not set MAC $MAC on $device: is the MAC valid and the device not in use by another port?"
}

set_up() {
    log "bringing $1 up"
    privileged ip link set dev "$1" up || die "could not bring $1 up"
}

require_ovs_vsctl() {
    command -v ovs-vsctl >/dev/null ||
        die "ovs-vsctl not found: install Open vSwitch (apt-get install openvswitch-switch), or set interface_driver to manila.network.linux.interface.NoopInterfaceDriver"
}

# Exit status 0 if the OVS bridge exists, 2 if it does not; dies if ovsdb cannot be asked.
ovs_bridge_exists() {
    local status=0
    privileged ovs-vsctl --timeout="$OVS_UNPLUG_TIMEOUT_SECONDS" br-exists "$BRIDGE" || status=$?
    case $status in
        0 | 2) return "$status" ;;
        *) die "ovs-vsctl could not reach the Open vSwitch database: is ovsdb-server running (systemctl status openvswitch-switch)?" ;;
    esac
}

check_ovs_bridge_exists() {
    local missing="bridge $BRIDGE does not exist: install/start Open vSwitch and create it (ovs-vsctl add-br $BRIDGE), or set interface_driver to manila.network.linux.interface.NoopInterfaceDriver"
    log "checking that bridge $BRIDGE exists"
    # Manila's check: the bridge's own device must be there.
    device_exists "$BRIDGE" || die "$missing"
    ovs_bridge_exists || die "$missing (a device named $BRIDGE exists, but Open vSwitch has no bridge of that name)"
}

plug_ovs() {
    # Always run add-port (unlike Manila, which skips it when the device exists): with
    # --may-exist it is a no-op for an up-to-date port, and it repairs a changed MAC.
    log "adding internal port $DEVICE to $BRIDGE (iface-id $PORT_ID, attached-mac $MAC)"
    privileged ovs-vsctl --timeout="$OVS_PLUG_TIMEOUT_SECONDS" \
        -- --may-exist add-port "$BRIDGE" "$DEVICE" \
        -- set Interface "$DEVICE" type=internal \
        -- set Interface "$DEVICE" "external-ids:iface-id=$PORT_ID" \
        -- set Interface "$DEVICE" external-ids:iface-status=active \
        -- set Interface "$DEVICE" "external-ids:attached-mac=$MAC" ||
        die "ovs-vsctl could not add port $DEVICE to $BRIDGE: is ovs-vswitchd running (systemctl status openvswitch-switch)? Is $DEVICE a port of another bridge (ovs-vsctl port-to-br $DEVICE)?"
    wait_for_device "$DEVICE"
    set_mac_if_differs "$DEVICE"
    set_up "$DEVICE"
}

unplug_ovs() {
    log "deleting port $DEVICE from $BRIDGE"
    privileged ovs-vsctl --timeout="$OVS_UNPLUG_TIMEOUT_SECONDS" -- --if-exists del-port "$BRIDGE" "$DEVICE" ||
        die "ovs-vsctl could not delete port $DEVICE from $BRIDGE: is ovs-vswitchd running (systemctl status openvswitch-switch)? Is it a port of another bridge (ovs-vsctl port-to-br $DEVICE)?"
}

plug_bridge() {
    local tap
    tap=$(bridge_tap_name)
    if device_exists "$DEVICE"; then
        log "veth $DEVICE already exists"
    else
        log "creating veth pair $tap <-> $DEVICE"
        privileged ip link add "$tap" type veth peer name "$DEVICE" ||
            die "could not create veth pair $tap/$DEVICE: is $tap already used by another device (ip link show $tap)?"
    fi
    set_mac_if_differs "$DEVICE"
    set_up "$tap"
    set_up "$DEVICE"
}

unplug_bridge() {
    log "deleting $DEVICE (its veth peer $(bridge_tap_name) goes with it)"
    privileged ip link del dev "$DEVICE" || die "could not delete $DEVICE"
}

# --- addresses and routes (init_l3) -----------------------------------------------------------

# The device's global, permanent IPv4 addresses as IP/PLEN, one a line.
device_ipv4_cidrs() {
    ip -o -4 addr show dev "$DEVICE" scope global permanent | awk '{ print $4 }'
}

# The routes this port wants, "PREFIX SRC" one a line: the halves of each of its subnets,
# from its address in that subnet (the first one, if it has two in a subnet).
wanted_routes() {
    local cidr half
    local -A seen=()
    for cidr in ${CIDRS[@]+"${CIDRS[@]}"}; do
        while read -r half; do
            [[ -n $half && -z ${seen[$half]:-} ]] || continue
            seen[$half]=1
            printf '%s %s\n' "$half" "${cidr%/*}"
        done < <(subnet_halves "$cidr")
    done
}

route_present() {
    local prefix=$1 src=$2
    [[ -n $(ip -4 route list exact "$prefix" dev "$DEVICE" proto static src "$src" 2>/dev/null) ]]
}

# The devices whose routes to PREFIX come before this device's, one a line.
devices_ahead() {
    ip -4 route list exact "$1" | awk -v me="$DEVICE" '{
        for (i = 1; i < NF; i++) if ($i == "dev") { if ($(i + 1) == me) exit; print $(i + 1) } }'
}

add_route() {
    local prefix=$1 src=$2 ahead
    route_present "$prefix" "$src" && return 0
    log "routing $prefix through $DEVICE (src $src)"
    # append, not add: another tenant's port on the same admin subnet may hold the same
    # prefix already, and its route stays first (either port reaches the subnet).
    privileged ip -4 route append "$prefix" dev "$DEVICE" proto static scope link src "$src" ||
        die "could not add the route to $prefix through $DEVICE (src $src)"
    ahead=$(devices_ahead "$prefix" | sort -u | tr '\n' ' ')
    if [[ -n $ahead ]]; then
        log "traffic to $prefix still leaves through ${ahead% }, whose route came first; $DEVICE takes over when that route goes"
    fi
}

delete_route() {
    local prefix=$1 src=$2
    route_present "$prefix" "$src" || return 0
    log "deleting the route to $prefix through $DEVICE (src $src)"
    privileged ip -4 route del "$prefix" dev "$DEVICE" proto static scope link src "$src" ||
        die "could not delete the route to $prefix through $DEVICE"
}

delete_address() {
    local cidr=$1
    device_exists "$DEVICE" || return 0
    grep -qxF -- "$cidr" < <(device_ipv4_cidrs) || return 0
    log "deleting address $cidr from $DEVICE"
    # Deleting a primary address can take its secondaries along; they are added back after.
    privileged ip -4 addr del "$cidr" dev "$DEVICE" || die "could not delete $cidr from $DEVICE"
}

add_address() {
    local cidr=$1
    grep -qxF -- "$cidr" < <(device_ipv4_cidrs) && return 0
    log "adding address $cidr to $DEVICE"
    if ((${cidr#*/} <= 30)); then
        privileged ip -4 addr add "$cidr" brd + scope global dev "$DEVICE" ||
            die "could not add $cidr to $DEVICE: is the address used with another prefix length?"
    else
        # /31 and /32 have no broadcast address.
        privileged ip -4 addr add "$cidr" scope global dev "$DEVICE" ||
            die "could not add $cidr to $DEVICE: is the address used with another prefix length?"
    fi
}

contains() {
    local needle=$1 item
    shift
    for item in "$@"; do
        [[ $item == "$needle" ]] && return 0
    done
    return 1
}

describe_routes() {
    local entry text=""
    for entry in "$@"; do
        text+="${text:+, }${entry% *} (src ${entry#* })"
    done
    printf '%s\n' "${text:-none}"
}

check_addresses() {
    local expected actual
    expected=$(printf '%s\n' ${CIDRS[@]+"${CIDRS[@]}"} | sed '/^$/d' | sort)
    actual=$(device_ipv4_cidrs | sort)
    [[ $expected == "$actual" ]] ||
        die "addresses on $DEVICE are [${actual//$'\n'/ }], expected [${expected//$'\n'/ }]: another agent may be managing $DEVICE"
}

init_l3() {
    local -a routes=() stale_addresses=()
    local entry cidr
    mapfile -t routes < <(wanted_routes)
    mapfile -t stale_addresses < <(device_ipv4_cidrs)
    # Write ahead: the file lists everything this run may leave behind before any of it
    # exists, so a run killed half-way leaves nothing that unplug does not know about.
    for entry in ${CIDRS[@]+"${CIDRS[@]}"}; do
        contains "$entry" ${STATE_ADDRESSES[@]+"${STATE_ADDRESSES[@]}"} || STATE_ADDRESSES+=("$entry")
    done
    for entry in ${routes[@]+"${routes[@]}"}; do
        contains "$entry" ${STATE_ROUTES[@]+"${STATE_ROUTES[@]}"} || STATE_ROUTES+=("$entry")
    done
    write_state

    for entry in ${STATE_ROUTES[@]+"${STATE_ROUTES[@]}"}; do
        contains "$entry" ${routes[@]+"${routes[@]}"} || delete_route "${entry% *}" "${entry#* }"
    done
    for cidr in ${stale_addresses[@]+"${stale_addresses[@]}"}; do
        contains "$cidr" ${CIDRS[@]+"${CIDRS[@]}"} || delete_address "$cidr"
    done
    for cidr in ${CIDRS[@]+"${CIDRS[@]}"}; do
        add_address "$cidr"
    done
    for entry in ${routes[@]+"${routes[@]}"}; do
        add_route "${entry% *}" "${entry#* }"
    done
    check_addresses

    STATE_ADDRESSES=(${CIDRS[@]+"${CIDRS[@]}"})
    STATE_ROUTES=(${routes[@]+"${routes[@]}"})
    write_state
    log "addresses on $DEVICE: ${CIDRS[*]:-none}; routes through it: $(describe_routes ${routes[@]+"${routes[@]}"})"
}

# refuse_addresses_held_elsewhere: another device with one of the port's addresses would
# answer for it (ARP, replies from the wrong device); the plug owns only what it adds, so it
# stops before changing anything instead of taking the address over.
refuse_addresses_held_elsewhere() {
    local cidr holder
    for cidr in ${CIDRS[@]+"${CIDRS[@]}"}; do
        holder=$(ip -o -4 addr show to "${cidr%/*}/32" | awk -v own="$DEVICE" '
            { sub(/@.*/, "", $2); if ($2 != own) { print $2; exit } }')
        [[ -z $holder ]] ||
            die "address ${cidr%/*} is already on device $holder: nothing was changed; remove it from $holder (ip addr del ${cidr%/*} dev $holder) or give the port another address"
    done
}

# --- plug and unplug -------------------------------------------------------------------------

plug() {
    [[ $DRIVER != ovs ]] || {
        require_ovs_vsctl
        check_ovs_bridge_exists
    }
    refuse_addresses_held_elsewhere
    local owner
    owner=$(device_owner)
    case $owner in
        other) die "device $DEVICE exists and is not this port's (ovs: external-ids:iface-id is not $PORT_ID; bridge: not a veth whose peer is $(bridge_tap_name)): it is left alone; remove it, or unplug the port it belongs to" ;;
        port) [[ -n $STATE_LINK ]] || log "$DEVICE already exists with this port's identity: adopting it" ;;
    esac
    if [[ -z $STATE_LINK ]]; then
        [[ $owner == none ]] && STATE_LINK=created || STATE_LINK=adopted
        write_state
    fi
    case $DRIVER in
        ovs) plug_ovs ;;
        bridge) plug_bridge ;;
    esac
    init_l3
}

unplug() {
    local owner entry
    if [[ $DRIVER == ovs ]]; then
        require_ovs_vsctl
        if ! ovs_bridge_exists; then
            log "bridge $BRIDGE does not exist, so port $DEVICE cannot exist: nothing to unplug"
            remove_state
            return 0
        fi
    fi
    [[ -e $STATE_FILE ]] ||
        log "no state file $STATE_FILE: removing only a device that carries this port's identity"
    owner=$(device_owner)
    case $owner in
        none) log "device $DEVICE does not exist: nothing to unplug" ;;
        other) log "warning: device $DEVICE is not this port's: it is left alone, with its addresses and routes" ;;
        port)
            for entry in ${STATE_ROUTES[@]+"${STATE_ROUTES[@]}"}; do
                delete_route "${entry% *}" "${entry#* }"
            done
            for entry in ${STATE_ADDRESSES[@]+"${STATE_ADDRESSES[@]}"}; do
                delete_address "$entry"
            done
            case $DRIVER in
                ovs) unplug_ovs ;;
                bridge) unplug_bridge ;;
            esac
            ;;
    esac
    remove_state
}

main() {
    exec </dev/null
    parse_args "$@"
    if [[ $DRIVER == noop ]]; then
        log "interface_driver is NoopInterfaceDriver: the host is already connected to this network, nothing to do"
        return 0
    fi
    check_privileges
    open_state
    "$ACTION"
    log "done"
}

main "$@"
