#!/bin/bash
# ssh_ready.sh: wait until the service instance's sshd answers, with the pinned host key.
#
#   ssh_ready.sh --host ADDRESS --timeout SECONDS [--host-key "TYPE BASE64"] [--port 22]
#
# Runs on the machine that runs pulumi, before the share commands dial the instance. It polls
# sshd every half second (pulumi-command's own redials back off to 5 s, so a booting instance
# is noticed late), and when a host key is pinned it compares what sshd offers with it: a
# machine that answers with another key is refused at once, with both keys named, instead of
# after the commands' minutes of redials. Read-only: it changes nothing anywhere.
#
# Fed to `bash -s` on stdin (see dhss_components/ssh_ready_script.py): settings and functions
# only until the last line, `main "$@"`, and stdin is /dev/null for every command it runs.
set -euo pipefail

readonly POLL_SECONDS=0.5
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
    [[ $PORT =~ ^[1-9][0-9]{0,4}$ ]] || usage_error "invalid --port '$PORT'"
    [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage_error "invalid --timeout '$TIMEOUT'"
    if [[ -n $HOST_KEY && ! $HOST_KEY =~ $KEY_PATTERN ]]; then
        usage_error "invalid --host-key: give 'TYPE BASE64', as in a known_hosts line"
    fi
}

# offered_keys: what sshd offers now, as "TYPE BASE64" lines (none while it does not answer;
# ssh-keyscan then fails, which is no error here).
offered_keys() {
    local type_option=() scanned
    if [[ -n $HOST_KEY ]]; then
        type_option=(-t "${HOST_KEY%% *}")
    fi
    scanned=$(ssh-keyscan -T 1 -p "$PORT" "${type_option[@]}" -- "$HOST" </dev/null 2>/dev/null) ||
        return 0
    while read -r _host type blob _rest; do
        [[ -n ${blob:-} ]] && printf '%s %s\n' "$type" "$blob"
    done <<<"$scanned"
    return 0
}

main() {
    parse_args "$@"
    command -v ssh-keyscan >/dev/null || die "ssh-keyscan is not installed here: install openssh-client."
    local deadline=$((SECONDS + TIMEOUT)) keys
    while ((SECONDS < deadline)); do
        keys=$(offered_keys)
        if [[ -n $keys ]]; then
            if [[ -z $HOST_KEY ]]; then
                printf 'ssh_ready %s: sshd answers (host key not verified)\n' "$HOST" >&2
                return 0
            fi
            if grep -qxF -- "$HOST_KEY" <<<"$keys"; then
                printf 'ssh_ready %s: sshd answers with the pinned host key\n' "$HOST" >&2
                return 0
            fi
            die "host key mismatch: $HOST offers '$(head -n 1 <<<"$keys")', not the pinned" \
                "'$HOST_KEY'. Nothing was run on it. Another machine may hold the address, or" \
                "the image did not take the host key at boot (cloud-init): see the README's" \
                "Safety section."
        fi
        sleep "$POLL_SECONDS"
    done
    die "sshd did not answer within ${TIMEOUT}s (max_time_to_build_instance). Check the server's" \
        "console log (openstack console log show) and that this host reaches $HOST on port $PORT."
}

main "$@"
