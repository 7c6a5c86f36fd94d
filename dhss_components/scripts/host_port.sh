#!/bin/bash
# Plug (or unplug) the manila-share host's port into the service or admin network, the way
# Manila's interface drivers do (manila/network/linux/interface.py), then set its IPv4
# addresses the way init_l3 does.
#
#   host_port.sh plug   --driver ovs|bridge|noop --device DEV --port-id ID --mac MAC
#                       [--cidr IP/PLEN]... [--clear-cidr NET/PLEN]... [--bridge BR]
#   host_port.sh unplug --driver ovs|bridge|noop --device DEV [--bridge BR]
#
# Drivers:
#   ovs     an OVS internal port DEV on BR with Neutron's external-ids (OVSInterfaceDriver).
#   bridge  a veth pair: DEV (ns-...) carries the MAC and addresses; its peer tap... is left
#           for the Linux-bridge agent to enslave (BridgeInterfaceDriver).
#   noop    nothing at all, like NoopInterfaceDriver (whose init_l3 is a no-op too): the
#           operator has already connected the host to the network.
#
# plug is idempotent: a second run with the same arguments changes nothing. The device's
# global IPv4 addresses become exactly the --cidr list (stale ones are deleted); for each
# --clear-cidr, routes to it through other devices are deleted; and the kernel route of
# each of the device's subnets is moved in front of other devices' routes for the same
# subnet (Manila's pullup_route). unplug is safe to run twice and on a device that was
# never plugged.
#
# Manila's _remove_outdated_interfaces (unplugging any other tap* device that shares a
# subnet) is deliberately not done: a replaced host port is unplugged by its own delete.
#
# Runs as root. Otherwise each privileged command goes through `sudo -n`, so the caller
# needs passwordless sudo for ip and ovs-vsctl.
#
# dhss_components/host_port_script.py feeds this file to `bash -s` on stdin. So the file
# holds only settings and functions until its last line, `main "$@"`, and main points
# stdin at /dev/null before running anything, so no command can eat the script.
set -euo pipefail

# One lock for every host-port operation on this host: plugs touch the routes of other
# devices (clear-cidr, pullup), so two plugs must not interleave (Manila holds
# service_instance_plug_interface_in_host around plug). /run/lock is world-writable.
readonly LOCK_FILE=/run/lock/dhss-host-port.lock
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
CLEAR_CIDRS=()

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
        '           [--cidr IP/PLEN]... [--clear-cidr NET/PLEN]... [--bridge BR]' \
        '       host_port.sh unplug --driver ovs|bridge|noop --device DEV [--bridge BR]' >&2
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
            --clear-cidr) CLEAR_CIDRS+=("$2") ;;
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
    if [[ $ACTION == plug ]]; then
        [[ -n $PORT_ID ]] || usage_error "--port-id is required for plug"
        [[ $MAC =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] ||
            usage_error "--mac '$MAC' is not a MAC address like fa:16:3e:12:34:56"
        local cidr
        for cidr in ${CIDRS[@]+"${CIDRS[@]}"} ${CLEAR_CIDRS[@]+"${CLEAR_CIDRS[@]}"}; do
            [[ $cidr =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$ ]] ||
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

# Run a command that changes the host's network as root.
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
        die "not root and passwordless sudo is not allowed: run as root, or allow 'sudo -n' for ip and ovs-vsctl"
}

take_lock() {
    local lock_fd
    # flock works on a read-only descriptor too: that is enough when root made the file.
    { exec {lock_fd}>>"$LOCK_FILE"; } 2>/dev/null || exec {lock_fd}<"$LOCK_FILE" ||
        die "cannot open lock file $LOCK_FILE: is /run/lock writable?"
    flock -w "$LOCK_WAIT_SECONDS" "$lock_fd" ||
        die "another host-port plug held $LOCK_FILE for ${LOCK_WAIT_SECONDS}s: look for a stuck host_port.sh (fuser $LOCK_FILE)"
}

device_exists() {
    ip -o link show dev "$1" >/dev/null 2>&1
}

device_mac() {
    ip -o link show dev "$1" | awk '{ for (i = 1; i < NF; i++) if ($i == "link/ether") print $(i + 1) }'
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
    require_ovs_vsctl
    check_ovs_bridge_exists
    # Always run add-port (unlike Manila, which skips it when the device exists): with
    # --may-exist it is a no-op for an up-to-date port, and it repairs stale external-ids.
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
    require_ovs_vsctl
    if ! ovs_bridge_exists; then
        log "bridge $BRIDGE does not exist, so port $DEVICE cannot exist: nothing to unplug"
        return 0
    fi
    log "deleting port $DEVICE from $BRIDGE"
    privileged ovs-vsctl --timeout="$OVS_UNPLUG_TIMEOUT_SECONDS" -- --if-exists del-port "$BRIDGE" "$DEVICE" ||
        die "ovs-vsctl could not delete port $DEVICE from $BRIDGE: is ovs-vswitchd running (systemctl status openvswitch-switch)?"
    if device_exists "$DEVICE"; then
        log "warning: device $DEVICE still exists but is no port of $BRIDGE: it is not ours, so it is left alone"
    fi
}

# Manila's BridgeInterfaceDriver names the root end of the veth by replacing the ns- prefix.
bridge_tap_name() {
    printf 'tap%s\n' "${DEVICE#ns-}"
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
    if ! device_exists "$DEVICE"; then
        log "device $DEVICE does not exist: nothing to unplug"
        return 0
    fi
    log "deleting $DEVICE (its veth peer $(bridge_tap_name) goes with it)"
    privileged ip link del dev "$DEVICE" || die "could not delete $DEVICE"
}

# The device's global, permanent IPv4 addresses as IP/PLEN, one a line.
device_ipv4_cidrs() {
    ip -o -4 addr show dev "$DEVICE" scope global permanent | awk '{ print $4 }'
}

wanted_cidr() {
    local cidr
    for cidr in ${CIDRS[@]+"${CIDRS[@]}"}; do
        [[ $cidr == "$1" ]] && return 0
    done
    return 1
}

delete_stale_addresses() {
    local cidr current
    current=$(device_ipv4_cidrs)
    while read -r cidr; do
        [[ -n $cidr ]] || continue
        wanted_cidr "$cidr" && continue
        log "deleting stale address $cidr from $DEVICE"
        # Deleting a primary address can take its secondaries along; add_missing_addresses
        # runs afterwards and puts back any that were wanted.
        privileged ip -4 addr del "$cidr" dev "$DEVICE" || die "could not delete $cidr from $DEVICE"
    done <<<"$current"
}

add_missing_addresses() {
    local cidr current
    current=$(device_ipv4_cidrs)
    for cidr in ${CIDRS[@]+"${CIDRS[@]}"}; do
        grep -qxF -- "$cidr" <<<"$current" && continue
        log "adding address $cidr to $DEVICE"
        if ((${cidr#*/} <= 30)); then
            privileged ip -4 addr add "$cidr" brd + scope global dev "$DEVICE" ||
                die "could not add $cidr to $DEVICE: is the address used with another prefix length?"
        else
            # /31 and /32 have no broadcast address.
            privileged ip -4 addr add "$cidr" scope global dev "$DEVICE" ||
                die "could not add $cidr to $DEVICE: is the address used with another prefix length?"
        fi
    done
}

check_addresses() {
    local expected actual
    expected=$(printf '%s\n' ${CIDRS[@]+"${CIDRS[@]}"} | sed '/^$/d' | sort)
    actual=$(device_ipv4_cidrs | sort)
    [[ $expected == "$actual" ]] ||
        die "addresses on $DEVICE are [${actual//$'\n'/ }], expected [${expected//$'\n'/ }]: another agent may be managing $DEVICE"
}

# Manila's clear_outdated_routes: only this device may route to an admin-network cidr.
clear_outdated_routes() {
    local cidr=$1 routes device
    routes=$(ip -4 route list exact "$cidr" | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1) }')
    while read -r device; do
        [[ -n $device && $device != "$DEVICE" ]] || continue
        log "deleting route to $cidr through $device"
        privileged ip -4 route del "$cidr" dev "$device" || die "could not delete the route to $cidr through $device"
    done <<<"$routes"
}

# Manila's pullup_route: for each subnet of this device, move the kernel routes of other
# devices that come first behind this device's route, so traffic to the subnet uses it.
pullup_routes() {
    local subnet subnets
    subnets=$(ip -4 route list proto kernel dev "$DEVICE" | awk '{ print $1 }')
    while read -r subnet; do
        [[ -n $subnet ]] || continue
        pullup_route "$subnet"
    done <<<"$subnets"
}

pullup_route() {
    local subnet=$1 routes device src
    local -a ahead=()
    routes=$(ip -4 route list proto kernel exact "$subnet" | awk '{
        dev = ""; src = ""
        for (i = 1; i < NF; i++) { if ($i == "dev") dev = $(i + 1); if ($i == "src") src = $(i + 1) }
        print dev, src }')
    while read -r device src; do
        [[ -n $device ]] || continue
        if [[ $device == "$DEVICE" ]]; then
            local entry
            for entry in ${ahead[@]+"${ahead[@]}"}; do
                read -r device src <<<"$entry"
                log "moving the route to $subnet through $device behind $DEVICE"
                privileged ip -4 route del "$subnet" proto kernel dev "$device" ||
                    die "could not delete the route to $subnet through $device"
                privileged ip -4 route append "$subnet" proto kernel ${src:+src "$src"} dev "$device" ||
                    die "could not re-append the route to $subnet through $device (src ${src:-none}): re-add it with ip route append"
            done
            return 0
        fi
        ahead+=("$device $src")
    done <<<"$routes"
}

init_l3() {
    local cidr
    for cidr in ${CLEAR_CIDRS[@]+"${CLEAR_CIDRS[@]}"}; do
        clear_outdated_routes "$cidr"
    done
    delete_stale_addresses
    add_missing_addresses
    check_addresses
    pullup_routes
    log "addresses on $DEVICE: ${CIDRS[*]:-none}"
}

plug() {
    case $DRIVER in
        ovs) plug_ovs ;;
        bridge) plug_bridge ;;
    esac
    init_l3
}

unplug() {
    case $DRIVER in
        ovs) unplug_ovs ;;
        bridge) unplug_bridge ;;
    esac
}

main() {
    exec </dev/null
    parse_args "$@"
    if [[ $DRIVER == noop ]]; then
        log "interface_driver is NoopInterfaceDriver: the host is already connected to this network, nothing to do"
        return 0
    fi
    check_privileges
    take_lock
    "$ACTION"
    log "done"
}

main "$@"
