#!/usr/bin/env bash
# Installs the peer servers that `chorus-loadtest compare` (and `group-fanout --target ...`)
# runs against. Idempotent: installs only what is missing or at another version.
#   - nats29: nats-server 2.9 (Debian package; `apt-get update` only if the package is not
#     known yet)
#   - nats: the current nats-server and centrifugo: Centrifugo v6, both built by `go install`
#     through the Go module proxy into loadtest/peers/bin (gitignored); versions below
#   - socketio: socket.io, from package-lock.json, into loadtest/peers/node_modules (`npm ci`)
# Needs root (or sudo) for apt-get, Go (1.24 or later) for the two Go servers, and Node.js
# with npm for Socket.IO. A first build of the two Go servers takes a few minutes on 2 cores.
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

# The Go servers: `go version -m` reads the module version (and the -ldflags) a binary was
# built with, so a binary of another version (or none) is rebuilt and the right one is left
# alone. Centrifugo's release builds stamp their version with -X; `go install` does not, so
# it is stamped here (else `centrifugo version` says v0.0.0).
NATS_VERSION=v2.15.2
CENTRIFUGO_VERSION=v6.9.1
mkdir -p bin
go_install() { # module, version, binary name, -ldflags (may be empty)
    local module=$1 version=$2 name=$3 ldflags=$4 info
    if [ -x "bin/$name" ] && info=$(go version -m "bin/$name" 2>/dev/null) \
        && grep -qE "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)" <<<"$info" \
        && grep -qF -- "$ldflags" <<<"$info"; then
        echo "$name $version: present"
        return
    fi
    if ! command -v go >/dev/null 2>&1; then
        echo "$name: Go is not installed: cannot build $module@$version" >&2
        return 1
    fi
    GOBIN="$PWD/bin" CGO_ENABLED=0 go install -ldflags="$ldflags" "$module@$version"
    echo "$name $version: installed"
}
go_install github.com/nats-io/nats-server/v2 "$NATS_VERSION" nats-server ""
go_install github.com/centrifugal/centrifugo/v6 "$CENTRIFUGO_VERSION" centrifugo \
    "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=${CENTRIFUGO_VERSION#v}"
