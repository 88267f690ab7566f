#!/usr/bin/env bash
# Installs the peer servers that `chorus-loadtest compare` (and `group-fanout --target
# nats|socketio`) runs against. Idempotent: installs only what is missing.
#   - nats-server (Debian package; `apt-get update` only if the package is not known yet)
#   - socket.io, from package-lock.json, into loadtest/peers/node_modules (`npm ci`)
# Needs root (or sudo) for apt-get, and Node.js with npm for Socket.IO.
set -euo pipefail
cd "$(dirname "$0")"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
    echo "nats-server: present"
else
    if ! apt-cache show nats-server >/dev/null 2>&1; then
        as_root apt-get update -qq
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
    echo "nats-server: installed"
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if ! apt-cache show nodejs >/dev/null 2>&1; then
        as_root apt-get update -qq
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    echo "node: installed"
fi

# npm ci wipes and reinstalls node_modules: skip it when the installed tree already matches
# the lockfile (npm keeps a copy of it in node_modules/.package-lock.json).
if [ -d node_modules/socket.io ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    echo "socket.io: present"
else
    npm ci --no-audit --no-fund --loglevel=error
    echo "socket.io: installed"
fi
