#!/usr/bin/env bash
# Provides kube-apiserver and etcd for envtest and prints the directory holding
# them (the value for KUBEBUILDER_ASSETS) as the last line on stdout.
#
# setup-envtest is tried first; where it cannot download (closed networks,
# CI without egress) both binaries are built from Go modules, which only needs
# the Go module proxy. Results are cached in bin/k8s/<version>-<os>-<arch>.
#
# The Kubernetes version is derived from the k8s.io/api requirement in go.mod
# (v0.Y.Z pairs with Kubernetes v1.Y.Z); the etcd version from the one
# k8s.io/kubernetes itself requires, so the pair is the one upstream tests.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "envtest-assets: $*" >&2; }

api_version="$(cd "$ROOT" && go list -m -f '{{.Version}}' k8s.io/api)"
K8S_VERSION="${K8S_VERSION:-1.${api_version#v0.}}"
GOOS="$(go env GOOS)"; GOARCH="$(go env GOARCH)"
OUT="$ROOT/bin/k8s/${K8S_VERSION}-${GOOS}-${GOARCH}"

have_assets() { [[ -x "$OUT/kube-apiserver" && -x "$OUT/etcd" ]]; }

if have_assets; then
  echo "$OUT"
  exit 0
fi
mkdir -p "$OUT"

try_setup_envtest() {
  [[ "${ENVTEST_NO_DOWNLOAD:-}" == "true" ]] && return 1
  # Pinned from go.mod: the newest setup-envtest release of the
  # controller-runtime minor version the project builds with.
  local cr minor version tool
  cr="$(cd "$ROOT" && go list -m -f '{{.Version}}' sigs.k8s.io/controller-runtime)" || return 1
  minor="${cr%.*}"
  version="$(go list -m -versions sigs.k8s.io/controller-runtime/tools/setup-envtest 2>/dev/null | tr ' ' '\n' | grep "^${minor}\." | tail -1)"
  [[ -n "$version" ]] || return 1
  tool="$ROOT/bin/setup-envtest-$version"
  if [[ ! -x "$tool" ]]; then
    log "installing setup-envtest $version"
    # Its errors (a 403 from a closed network) are not the user's problem:
    # the fallback below says what happens instead, in one line.
    GOBIN="$ROOT/bin" go install "sigs.k8s.io/controller-runtime/tools/setup-envtest@$version" >/dev/null 2>&1 || return 1
    mv "$ROOT/bin/setup-envtest" "$tool"
  fi
  log "trying setup-envtest download of Kubernetes $K8S_VERSION"
  local dir
  dir="$(timeout 60 "$tool" use "$K8S_VERSION" --bin-dir "$ROOT/bin/setup-envtest-cache" -p path 2>/dev/null)" || return 1
  [[ -x "$dir/kube-apiserver" && -x "$dir/etcd" ]] || return 1
  cp "$dir/kube-apiserver" "$dir/etcd" "$OUT/"
  [[ -x "$dir/kubectl" ]] && cp "$dir/kubectl" "$OUT/"
  return 0
}

# Builds in a throwaway module: k8s.io/kubernetes points its staging modules at
# local paths, so each is replaced by its published v0.Y.Z.
build_from_modules() {
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  local minor="${K8S_VERSION#*.}"
  local staging_version="v0.${minor}"

  log "resolving k8s.io/kubernetes v$K8S_VERSION"
  local kgomod
  kgomod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  [[ -f "$kgomod" ]] || { log "cannot download k8s.io/kubernetes v$K8S_VERSION"; return 1; }

  local etcd_version="${ETCD_VERSION:-$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$kgomod")}"
  [[ -n "$etcd_version" ]] || { log "cannot find the etcd version k8s.io/kubernetes requires"; return 1; }

  (
    cd "$work"
    mkdir kube etcd
    cd kube
    go mod init envtest-build/kube >/dev/null 2>&1
    go mod edit -require "k8s.io/kubernetes@v$K8S_VERSION"
    grep -Eo '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$kgomod" | awk '{print $1}' | while read -r m; do
      go mod edit -replace "$m=$m@$staging_version"
    done
    log "building kube-apiserver v$K8S_VERSION from modules (cold: ~10 min on 2 cores)"
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver 2>&1 \
      | grep -v '^go: downloading' >&2 || true
    [[ -x "$OUT/kube-apiserver.tmp" ]] || { log "kube-apiserver build failed"; exit 1; }

    cd ../etcd
    go mod init envtest-build/etcd >/dev/null 2>&1
    go mod edit -require "go.etcd.io/etcd/server/v3@$etcd_version"
    log "building etcd $etcd_version from modules (cold: ~1 min)"
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 2>&1 \
      | grep -v '^go: downloading' >&2 || true
    [[ -x "$OUT/etcd.tmp" ]] || { log "etcd build failed"; exit 1; }
  ) || return 1
  mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
  mv "$OUT/etcd.tmp" "$OUT/etcd"
}

# Progress while a cold build runs, so a CI log does not look hung.
heartbeat() { local start=$SECONDS; while sleep 30; do log "still building ($((SECONDS - start))s)"; done; }

if ! try_setup_envtest; then
  log "setup-envtest unavailable; building from Go modules"
  heartbeat & hb=$!
  trap 'kill $hb 2>/dev/null || true' EXIT
  build_from_modules
  kill $hb 2>/dev/null || true
fi

have_assets || { log "no envtest assets in $OUT"; exit 1; }
log "assets ready in $OUT"
echo "$OUT"
