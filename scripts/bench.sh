#!/usr/bin/env bash
# SMTP delivery benchmark of the real binary on loopback (issue 2):
#   4 KiB messages at C=1 and C=16, 2 KiB at C=10, fsyncs per message
#   (strace counts every fsync/fdatasync of the server), RSS after 10k and
#   100k delivered. Paste the output into docs/BENCHMARKS.md.
# Usage: scripts/bench.sh [N]   (N = messages per throughput run, default 20000)
#        POSTFIX=1 scripts/bench.sh [N]  also runs scripts/bench-postfix.sh at the end
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
BIN=$PWD/bin/mailstead
BENCH=$PWD/bin/mailstead-bench
[ -x "$BIN" ] && [ -x "$BENCH" ] || make build >/dev/null

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

start() {
  rm -rf "$work/data" "$work/ready.json"
  cat > "$work/mailstead.toml" <<TOML
hostname = "bench.example.test"
data_dir = "data"
log_level = "warn"
[tls]
self_signed = true
[[listener]]
protocol = "smtp"
address = "127.0.0.1:0"
[limits]
max_connections_per_ip = 100
TOML
  "$BIN" --config "$work/mailstead.toml" account add bench@example.test --create-domain --generate >/dev/null
  "$BIN" --config "$work/mailstead.toml" serve --ready-file "$work/ready.json" 2>"$work/server.log" &
  pid=$!
  for _ in $(seq 1 200); do [ -s "$work/ready.json" ] && break; sleep 0.05; done
  addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listeners"]["smtp"])' "$work/ready.json")
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
run() { "$BENCH" -addr "$addr" -to bench@example.test -from load@example.net -pid "$pid" "$@"; }
rss_kib() { awk '/VmRSS/{print $2}' /proc/"$1"/status; }

echo "# machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# go: $(go version | cut -d' ' -f3)"

start
run -n 500 -c 8 >/dev/null   # warm-up
echo "## throughput"
echo "4KiB C=1:  $(run -n $((N/5)) -c 1 -size 4096)"
echo "4KiB C=16: $(run -n "$N" -c 16 -size 4096)"
echo "2KiB C=10: $(run -n "$N" -c 10 -size 2048)"

echo "## fsyncs per message (strace -f -c on the server, 2000 messages at C=16)"
strace -f -c -e trace=fsync,fdatasync -p "$pid" -o "$work/strace.txt" &
spid=$!
sleep 1
run -n 2000 -c 16 -size 4096 >/dev/null
sleep 0.5
kill -INT "$spid"; wait "$spid" 2>/dev/null || true
calls=$(awk '$NF=="fsync"||$NF=="fdatasync"{s+=$4} END{print s+0}' "$work/strace.txt")
echo "fsync+fdatasync calls: $calls for 2000 messages = $(python3 -c "print(round($calls/2000,3))") per message"
grep -E 'fsync|fdatasync|calls' "$work/strace.txt" | sed 's/^/    /'
stop

echo "## RSS after 10k and 100k delivered (fresh server, C=16, 4 KiB)"
start
run -n 10000 -c 16 >/dev/null
r10=$(rss_kib "$pid")
run -n 90000 -c 16 >/dev/null
r100=$(rss_kib "$pid")
echo "RSS after 10k: $((r10/1024)) MiB, after 100k: $((r100/1024)) MiB, ratio $(python3 -c "print(round($r100/$r10,3))")"
echo "data dir: $(du -sh "$work/data" | cut -f1)"
stop

# POSTFIX=1: also the side-by-side run against Postfix + Dovecot from apt
# (needs root; N for it comes from the environment, default 5000).
if [ "${POSTFIX:-0}" = 1 ]; then
  echo "## side by side with Postfix 3.7 + Dovecot 2.3 (scripts/bench-postfix.sh)"
  scripts/bench-postfix.sh
fi
