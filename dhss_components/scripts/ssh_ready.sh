#!/bin/bash
# ssh_ready.sh: wait until the service instance's sshd answers, with the pinned host key.
#
#   ssh_ready.sh --host ADDRESS --timeout SECONDS [--host-key "TYPE BASE64"] [--port 22]
#
# Runs on the machine that runs pulumi, before the share commands dial the instance. It polls
# sshd every half second (pulumi-command's own redials back off to 5 s, so a booting instance
# is noticed late), and when a host key is pinned it compares every key sshd offers, of every
# type, with it: a machine that answers without the pinned key (another key of the same type,
# or only keys of other types) is refused at once, with the keys named, instead of after the
# commands' minutes of redials. Read-only: it changes nothing anywhere.
#
# Fed to `bash -s` on stdin (see dhss_components/ssh_ready_script.py): settings and functions
# only until the last line, `main "$@"`, and stdin is /dev/null for every command it runs.
set -euo pipefail

readonly POLL_SECONDS=0.5
readonly MAX_PORT=65535
# The same bound as the program's max_time_to_build_instance: a day.
readonly MAX_TIMEOUT_SECONDS=86400
# ssh-keyscan asks for each key type on a connection of its own, at once, and drops one that
# is silent for -T seconds. A key exchange can take seconds on a busy instance (3 to 4 on the
# test guest under emulation; with -T 1 it never got a key), so a poll gives it 5; before a
# refusal, a second look gives each type 15, so that a slow answer for the pinned key's type
# alone is not taken for another machine. A closed port is told at once either way.
readonly SCAN_SECONDS=5
readonly CONFIRM_SCAN_SECONDS=15
readonly HOST_PATTERN='^[A-Za-z0-9.:-]+$'
readonly KEY_PATTERN='^(ssh-[a-z0-9-]+|ecdsa-sha2-nistp[0-9]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+=*$'

HOST=""
PORT=22
TIMEOUT=""
HOST_KEY=""

die() {
    printf 'ssh_ready %s: ERROR: %s\n' "${HOST:-?}" "$*" >&2
    exit 1
}

usage_error() {
    printf 'ssh_ready: %s\n' "$*" >&2
    printf '%s\n' 'usage: ssh_ready.sh --host ADDRESS --timeout SECONDS [--host-key "TYPE BASE64"]' \
        '                    [--port PORT]' >&2
    exit 2
}

parse_args() {
    while (($#)); do
        case $1 in
            --host | --port | --timeout | --host-key)
                (($# >= 2)) || usage_error "option $1 needs a value"
                case $1 in
                    --host) HOST=$2 ;;
                    --port) PORT=$2 ;;
                    --timeout) TIMEOUT=$2 ;;
                    --host-key) HOST_KEY=$2 ;;
                esac
                shift 2
                ;;
            *) usage_error "unknown argument '$1'" ;;
        esac
    done
    [[ $HOST =~ $HOST_PATTERN ]] || usage_error "invalid --host '$HOST'"
    if ! [[ $PORT =~ ^[1-9][0-9]{0,4}$ ]] || ((PORT > MAX_PORT)); then
        usage_error "invalid --port '$PORT': a TCP port, 1 to $MAX_PORT"
    fi
    if ! [[ $TIMEOUT =~ ^[1-9][0-9]{0,5}$ ]] || ((TIMEOUT > MAX_TIMEOUT_SECONDS)); then
        usage_error "invalid --timeout '$TIMEOUT': whole seconds, 1 to $MAX_TIMEOUT_SECONDS (a day)"
    fi
    if [[ -n $HOST_KEY && ! $HOST_KEY =~ $KEY_PATTERN ]]; then
        usage_error "invalid --host-key: give 'TYPE BASE64', as in a known_hosts line"
    fi
}

# offered_keys SECONDS: every key sshd offers now, as "TYPE BASE64" lines: no -t, so every
# type ssh-keyscan knows (rsa, ecdsa, ed25519 and their -sk kinds), not only the pinned key's,
# or a machine offering only other types would look silent and be waited on until the timeout.
# None while it does not answer (ssh-keyscan then fails, which is no error here).
# offered_keys SECONDS TYPE: only keys of that type. A scan of every type in one go can come
# back without some of them from a slow machine, so a mismatch is only called after the pinned
# type itself was asked for.
offered_keys() {
    local scanned type_option=()
    if (($# > 1)); then
        type_option=(-t "$2")
    fi
    scanned=$(ssh-keyscan -T "$1" -p "$PORT" "${type_option[@]}" -- "$HOST" </dev/null 2>/dev/null) ||
        return 0
    while read -r _host type blob _rest; do
        [[ -n ${blob:-} ]] && printf '%s %s\n' "$type" "$blob"
    done <<<"$scanned"
    return 0
}

# quoted_list LINES: the lines as 'one', 'two'.
quoted_list() {
    local lines=() text
    mapfile -t lines <<<"$1"
    printf -v text "'%s', " "${lines[@]}"
    printf '%s' "${text%, }"
}

# offers_pinned KEYS: whether the pinned key is one of these lines.
offers_pinned() {
    grep -qxF -- "$HOST_KEY" <<<"$1"
}

main() {
    parse_args "$@"
    command -v ssh-keyscan >/dev/null || die "ssh-keyscan is not installed here: install openssh-client."
    local deadline=$((SECONDS + TIMEOUT)) keys pinned_type
    while ((SECONDS < deadline)); do
        keys=$(offered_keys "$SCAN_SECONDS")
        if [[ -n $keys ]]; then
            if [[ -z $HOST_KEY ]]; then
                printf 'ssh_ready %s: sshd answers (host key not verified)\n' "$HOST" >&2
                return 0
            fi
            if ! offers_pinned "$keys"; then
                # Ask for the pinned type alone, with a longer wait, before calling it another
                # machine; if it has no key of that type, look at every type once more (none
                # then: it went quiet, a reboot, and is waited for).
                pinned_type=$(offered_keys "$CONFIRM_SCAN_SECONDS" "${HOST_KEY%% *}")
                if [[ -n $pinned_type ]]; then
                    keys=$pinned_type
                else
                    keys=$(offered_keys "$CONFIRM_SCAN_SECONDS")
                fi
            fi
            if offers_pinned "$keys"; then
                # ssh-keyscan sees the key, not proof of its private half: each command's own
                # pinned connection checks that.
                printf 'ssh_ready %s: sshd offers the pinned host key\n' "$HOST" >&2
                return 0
            fi
            if [[ -n $keys ]]; then
                die "host key mismatch: $HOST offers $(quoted_list "$keys"), not the pinned" \
                    "'$HOST_KEY'. Nothing was run on it. Another machine may hold the address," \
                    "or the image did not take the host key at boot (cloud-init): see the" \
                    "README's Safety section."
            fi
            # Gone quiet between the two looks (a reboot): keep waiting.
        fi
        sleep "$POLL_SECONDS"
    done
    die "sshd did not answer within ${TIMEOUT}s (max_time_to_build_instance). Check the server's" \
        "console log (openstack console log show) and that this host reaches $HOST on port $PORT."
}

main "$@"
