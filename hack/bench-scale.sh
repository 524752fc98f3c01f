#!/usr/bin/env bash
# make bench-scale: issue 14's goals 3, 5, 6 and 7 and issue 26's (the
# KeyDigestSlices, at 10k and WORKSPACES keys, against the design before
# them, built from git in the same run) on a local control plane, each
# against a baseline measured in the same run, then one table. Takes about
# 45 minutes at 100k.
#
#   WORKSPACES=100000 KEYS=10000 hack/bench-scale.sh
#   hack/bench-scale.sh --from DIR   # the table again, from the outputs a
#                                    # run kept in DIR (lastused, index,
#                                    # gateway, restart-10k, restart)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--from" ]; then
  out=$2
else
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$(hack/envtest-assets.sh)}"

echo "== goal 3: lastUsedTime writes per proxy replica at 100k keys in use"
go test ./internal/keyindex -run '^$' -bench LastUsedWritesAtScale -benchtime 1x | tee "$out/lastused"
echo "== goal 5: the auth proxy's index at 100k and 1M keys"
go test ./internal/authproxy -run '^$' -bench IndexMemory -benchtime 1x | tee "$out/index"
echo "== goals 6 and 7: the auth-proxy binary behind nginx auth_request, and as a reverse proxy"
go run ./hack/gatewaybench -keys "${KEYS:-10000}" | tee "$out/gateway"
echo "== issue 26: manager restart, auth proxy first sync, propagation and writes, slices against the design before them, at 10k and ${WORKSPACES:-100000} workspaces"
# The managers' logs are kept where a failed run can still be read.
logs=${MANAGER_LOGS:-$(mktemp -d -t bench-scale-logs.XXXXXX)}
echo "(the restarted managers' logs: $logs)"
go run ./hack/restartbench -workspaces 10000 -manager-log "$logs/manager-10k.log" | tee "$out/restart-10k"
# The goal at 100k is a manager in a 512 MiB container: its Go soft limit
# is then 90% of that (internal/memlimit), for both designs.
go run ./hack/restartbench -workspaces "${WORKSPACES:-100000}" -manager-gomemlimit 460MiB -manager-log "$logs/manager.log" | tee "$out/restart"
fi

# The table goes to the terminal and to docs/benchmarks.md, the one page
# that holds measured figures; the manual's pages link to it.
table() {
echo
echo "| goal | figure | measured | baseline, same run | target |"
echo "|---|---|---|---|---|"
awk '/writes\/s@100k/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "writes/s@100k") w = $i; if ($(i+1) == "baseline-writes/s@100k") b = $i }
      printf "| 3 | lastUsedTime writes/s per replica, 100k keys in use | %s | %s (every flush) | ≤ 50 |\n", w, b }' "$out/lastused"
awk '/BenchmarkIndexMemory\/keys=/ { for (i = 1; i <= NF; i++) if ($(i+1) == "MiB") m = $i; split($1, k, "="); sub(/-.*/, "", k[2])
      printf "| 5 | auth proxy index, %s keys (live heap) | %s MiB | (100k row) | (RSS ≤ 64 MiB at 100k) |\n", k[2], m }' "$out/index"
grep -h '^| ' "$out/gateway" "$out/restart-10k" "$out/restart" || true
}
table | tee "$out/table"
{
  echo "# Benchmark figures"
  echo
  echo "Written by \`make bench-scale\` ($(date -u +%Y-%m-%d), $(nproc) cores, WORKSPACES=${WORKSPACES:-100000}, KEYS=${KEYS:-10000}, commit ${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}); do not edit by hand. What the figures mean and what bounds them: [Scale](scale.md)."
  if [ -n "${BENCH_NOTE:-}" ]; then echo; echo "$BENCH_NOTE"; fi
  cat "$out/table"
} > docs/benchmarks.md
