#!/usr/bin/env bash
# Builds the test bed's kube-apiserver and etcd from the Go module proxy, at the versions pinned in
# testbed/go.mod, into a cache folder outside the clone, and prints that folder.
# The folder's name is a hash of everything that decides the build (go.mod, go.sum, the mains and
# the Go version), so a new pin rebuilds and an unchanged one is reused by every clone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${TRANSPORTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/transporter}
key=$( (cat "$0" "$here/go.mod" "$here/go.sum" "$here"/cmd/*/main.go; go version) | sha256sum | cut -c1-16)
out="$cache_root/testbed/$key"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then
  echo "$out"; exit 0
fi
echo "testbed: building kube-apiserver and etcd into $out (takes several minutes the first time)" >&2
tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cd "$here"
# Stamp the real version, as Kubernetes' own build does, so /version and discovery tell the truth.
kube=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$kube" | cut -d. -f2)
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$kube -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
# -mod=readonly: the pins in go.mod/go.sum are what we build, never silently updated.
go build -mod=readonly -trimpath -ldflags="$ldflags" -o "$tmp/" ./cmd/kube-apiserver ./cmd/etcd >&2
"$tmp/kube-apiserver" --version >&2
mv "$tmp" "$out.new" && rm -rf "$out" && mv "$out.new" "$out"
trap - EXIT
echo "$out"
