#!/usr/bin/env bash
# Installs what `make bench` measures against and drives with, when missing:
# nginx, HAProxy and h2load from Debian (through scripts/install-deps.sh,
# root needed only when something is missing), and fortio and Caddy built
# from their Go modules into .tools/ (cached there: built once per machine).
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# fortio v1.64 and later need grol.io/grol, which the module proxy reachable
# here refuses; v1.63.0 has the load, gRPC ping and server modes used.
FORTIO_VERSION=v1.63.0
CADDY_VERSION=v2.11.9
TOOLS="$PWD/.tools"
GO=${GO:-go}

./scripts/install-deps.sh

# A stamp beside each binary names the version built: `caddy version`
# prints "unknown" when built with go install.
install_go_tool() { # name module version
  if [ -x "$TOOLS/$1" ] && [ "$(cat "$TOOLS/$1.version" 2>/dev/null)" = "$3" ]; then
    return
  fi
  echo "building $1 $3 into $TOOLS"
  GOBIN="$TOOLS" "$GO" install "$2@$3"
  echo "$3" >"$TOOLS/$1.version"
}
install_go_tool fortio fortio.org/fortio "$FORTIO_VERSION"
install_go_tool caddy github.com/caddyserver/caddy/v2/cmd/caddy "$CADDY_VERSION"
