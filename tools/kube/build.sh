#!/usr/bin/env bash
# Builds kube-apiserver from k8s.io/kubernetes (this tools module) into
# .tools/kube-apiserver, for the tests of internal/testutil/kubeenv and
# those built on it (`make kube-tools`).
#
# A build takes minutes, so it happens only when needed. The cache key is a
# hash of this module's go.mod and go.sum, this script and the Go version:
# .tools/kube-apiserver.key holds the key its binary was built with, and
# each build is also kept under ~/.cache/weft/, so that a fresh clone on the
# same machine (CI clones anew for every run) copies it instead of building.
set -euo pipefail

GO=${GO:-go}
mod=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$mod/../.." && pwd)
out="$root/.tools/kube-apiserver"

key=$({ cat "$mod/go.mod" "$mod/go.sum" "$mod/build.sh"; "$GO" env GOVERSION; } | sha256sum | cut -c1-16)
if [ -x "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then
  exit 0
fi

cachedir="${XDG_CACHE_HOME:-$HOME/.cache}/weft"
cached="$cachedir/kube-apiserver-$key"
if [ ! -x "$cached" ]; then
  # The version the binary reports (/version, and the API server's own
  # compatibility version checks) is the module's: k8s.io/kubernetes
  # sets it with these flags in its release builds too.
  version=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$mod/go.mod")
  IFS=. read -r major minor _ <<<"${version#v}"
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  echo "kube-tools: building kube-apiserver $version from k8s.io/kubernetes (tools/kube); the first build takes minutes"
  start=$SECONDS
  mkdir -p "$cachedir"
  (cd "$mod" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" -o "$cached.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$cached.tmp" "$cached"
  echo "kube-tools: built in $((SECONDS - start))s"
  # Builds of older keys are of no further use.
  find "$cachedir" -maxdepth 1 -name 'kube-apiserver-*' ! -name "kube-apiserver-$key" -delete
fi

mkdir -p "$root/.tools"
cp "$cached" "$out.tmp"
mv "$out.tmp" "$out"
echo "$key" >"$out.key"
