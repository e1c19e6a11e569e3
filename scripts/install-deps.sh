#!/usr/bin/env bash
# Installs the Debian packages weft's build and tests use, when missing.
# Idempotent; needs root (CI runs as root) only when something is missing.
set -euo pipefail

packages=(
  protobuf-compiler # protoc, for `make gen` / `make check-gen`
  libprotobuf-dev   # the well-known types protoc imports (google/protobuf/*.proto)
  curl              # a real HTTP/1.1 and HTTP/2 client in the e2e tests
  chromium          # a real browser, headless, for the dashboard's e2e test
  fonts-dejavu-core # a font for that browser: without one its screenshots show no text
  etcd-server       # etcd, the store of the real kube-apiserver in the Kubernetes tests
  iptables          # transparent interception, installed in network namespaces by the tests
  iproute2          # ip netns and veth pairs, for the network-namespace tests
  nginx             # a peer of weft-proxy in `make bench` (and its smoke run in `make test`)
  libnginx-mod-stream # nginx's opaque TCP proxy, for the bench's TCP bulk workload
  haproxy           # a peer of weft-proxy in `make bench`
  nghttp2-client    # h2load, the bench's HTTP/2 many-streams client
  util-linux        # taskset, which pins the bench's proxies and load generator to their CPUs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
