#!/usr/bin/env bash
# Builds what makes readiness real in the test bed: kube-controller-manager and kube-scheduler
# (from controllers/go.mod, which pins the same k8s.io/kubernetes as go.mod's kube-apiserver) and
# KWOK, the node simulator that runs Pods without containers (from kwok/go.mod, its own pins),
# from the Go module proxy into a cache folder outside the clone, and prints that folder.
# The folder's name is a hash of everything that decides this build (this script, both modules'
# go.mod and go.sum, the Go version). It is separate from build.sh's key, so these binaries
# never make kube-apiserver and etcd rebuild, and the other way round.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${TRANSPORTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/transporter}
key=$( (cat "$0" "$here"/controllers/go.mod "$here"/controllers/go.sum "$here"/kwok/go.mod \
  "$here"/kwok/go.sum; go version) | sha256sum | cut -c1-16)
out="$cache_root/testbed-controllers/$key"
if [ -x "$out/kube-controller-manager" ] && [ -x "$out/kube-scheduler" ] && [ -x "$out/kwok" ]; then
  echo "$out"; exit 0
fi
kube=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
controllers_kube=$(cd "$here/controllers" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
if [ "$kube" != "$controllers_kube" ]; then
  echo "testbed: controllers/go.mod pins k8s.io/kubernetes $controllers_kube," \
    "go.mod (kube-apiserver) pins $kube: bump both together" >&2
  exit 1
fi
echo "testbed: building kube-controller-manager, kube-scheduler and kwok into $out" \
  "(takes several minutes the first time)" >&2
tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
# Stamp the real version, as Kubernetes' own build does (and as build.sh does).
minor=$(echo "$kube" | cut -d. -f2)
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$kube -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
# -mod=readonly: the pins in go.mod/go.sum are what we build, never silently updated.
(cd "$here/controllers" && go build -mod=readonly -trimpath -ldflags="$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler) >&2
(cd "$here/kwok" && go build -mod=readonly -trimpath -ldflags="-s -w" -o "$tmp/" \
  sigs.k8s.io/kwok/cmd/kwok) >&2
"$tmp/kube-controller-manager" --version >&2
"$tmp/kube-scheduler" --version >&2
"$tmp/kwok" --version >&2 || true
mv "$tmp" "$out.new" && rm -rf "$out" && mv "$out.new" "$out"
trap - EXIT
echo "$out"
