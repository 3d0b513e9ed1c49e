#!/usr/bin/env bash
# SMTP delivery side by side (issue 2): the loads of scripts/bench.sh's
# throughput section (4 KiB at C=1 and C=16, 2 KiB at C=10), sent by
# cmd/mailstead-bench to mailstead and to Postfix 3.7 delivering through LMTP
# into Dovecot 2.3 (Maildir), both from Debian's apt, on loopback.
#
# Postfix's 250 only means "queued" (fsynced to its queue); the message is in
# the mailbox once Dovecot has written and fsynced it into the Maildir. So for
# Postfix the script measures both: the accept rate mailstead-bench reports,
# and end to end, the time from the start of the run until all accepted
# messages are files in the Maildir's new/ or cur/. mailstead's 250 already
# means stored in the mailbox, so its two rates are the same.
#
# Both Postfix and Dovecot run as throwaway instances with all their state in
# a temporary directory: Postfix through `postfix -c DIR` (its own main.cf,
# master.cf, queue_directory and data_directory; the system's /etc/postfix is
# read, never written, and checked unchanged at exit), Dovecot through
# `dovecot -c FILE`. Postfix runs with its built-in defaults except the
# settings listed in write_postfix_config below (loopback, temp dirs, the
# LMTP route, no chroot); Dovecot with its defaults (mail_fsync=optimized:
# every delivered file is fsynced before it is renamed into new/).
#
# Needs root (Postfix's master and Dovecot's LMTP run as root and drop
# privileges).
#
# Usage: scripts/bench-postfix.sh
# Environment:
#   N=5000            messages per run (the C=1 run sends N/5, as bench.sh)
#   SERVERS="mailstead postfix"
#   MAILDIR_TIMEOUT=600  seconds to wait for the Maildir to fill, per run
#   KEEP=1            keep the work directory (logs, Maildir) at exit
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5000}
SERVERS=${SERVERS:-"mailstead postfix"}
MAILDIR_TIMEOUT=${MAILDIR_TIMEOUT:-600}
KEEP=${KEEP:-0}
RCPT=bench@example.test
BIN=$PWD/bin/mailstead
BENCH=$PWD/bin/mailstead-bench
[ -x "$BIN" ] && [ -x "$BENCH" ] || make build >/dev/null

[ "$(id -u)" = 0 ] || { echo "bench-postfix: needs root (Postfix and Dovecot instances)" >&2; exit 1; }
for f in /usr/sbin/postfix /usr/sbin/postconf /usr/sbin/dovecot /usr/lib/dovecot/lmtp; do
  [ -x "$f" ] || { echo "bench-postfix: $f missing (apt-get install postfix dovecot-core dovecot-lmtpd)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/bench-postfix.XXXXXX)
chmod 755 "$work" # Postfix's and Dovecot's processes run as other uids
pf=$work/postfix       # Postfix config_directory
dv=$work/dovecot       # Dovecot base, passwd-file and mail
maildir=$dv/mail/bench/Maildir
pid=                   # mailstead
mpid=                  # the running measure.py
dpid=                  # dovecot master (foreground child)
etc_before=$(find /etc/postfix -xdev -printf '%p %m %u %g %s %T@\n' 2>/dev/null | sort | md5sum)

# stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL.
stop_pid() {
  local p=$1
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
stop_postfix() {
  [ -f "$work/spool/pid/master.pid" ] || return 0
  local mpid
  mpid=$(awk '{print $1; exit}' "$work/spool/pid/master.pid")
  # `postfix stop` waits up to 5 s, then kills the master's process group.
  timeout 20 postfix -c "$pf" stop >/dev/null 2>&1 || true
  if [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null; then
    # Only if it is still our instance's master (pid file in our temp dir).
    grep -q "$work" "/proc/$mpid/environ" 2>/dev/null && kill -9 -- "-$mpid" 2>/dev/null || true
  fi
  rm -f "$work/spool/pid/master.pid"
}
cleanup() {
  set +e
  [ -n "$mpid" ] && stop_pid "$mpid"
  [ -n "$pid" ] && stop_pid "$pid"
  stop_postfix
  [ -n "$dpid" ] && stop_pid "$dpid"
  local etc_after
  etc_after=$(find /etc/postfix -xdev -printf '%p %m %u %g %s %T@\n' 2>/dev/null | sort | md5sum)
  [ "$etc_before" = "$etc_after" ] || echo "bench-postfix: WARNING: /etc/postfix changed during the run" >&2
  if [ "$KEEP" = 1 ]; then echo "# kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench-postfix: nothing listening on 127.0.0.1:$1 after 10 s" >&2
  return 1
}

# --- mailstead: as scripts/bench.sh ---------------------------------------
start_mailstead() {
  local dir=$work/mailstead
  mkdir -p "$dir"
  cat > "$dir/mailstead.toml" <<TOML
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
  "$BIN" --config "$dir/mailstead.toml" account add "$RCPT" --create-domain --generate >/dev/null
  "$BIN" --config "$dir/mailstead.toml" serve --ready-file "$dir/ready.json" 2>"$dir/server.log" &
  pid=$!
  for _ in $(seq 1 200); do [ -s "$dir/ready.json" ] && break; sleep 0.05; done
  addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listeners"]["smtp"])' "$dir/ready.json")
  server_pid=$pid
  count_dir=
  log=
}
stop_mailstead() { stop_pid "$pid"; pid=; }

# --- Dovecot: LMTP only, Maildir, one account -----------------------------
start_dovecot() {
  mkdir -p "$dv/run" "$dv/state" "$dv/mail/bench"
  chown 40000:40000 "$dv/mail/bench"
  # Password unused (LMTP only needs the userdb), but Dovecot wants a passdb.
  echo "$RCPT:{PLAIN}unused:40000:40000::$dv/mail/bench::" > "$dv/passwd"
  cat > "$dv/dovecot.conf" <<CONF
# Dovecot 2.3 defaults (mail_fsync = optimized), plus only what a throwaway
# LMTP-only instance in a temporary directory needs.
base_dir = $dv/run
state_dir = $dv/state
instance_name = bench-postfix
log_path = $dv/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
mail_location = maildir:~/Maildir
first_valid_uid = 40000
passdb {
  driver = passwd-file
  args = $dv/passwd
}
userdb {
  driver = passwd-file
  args = $dv/passwd
}
service lmtp {
  unix_listener $dv/lmtp {
    user = postfix
    group = postfix
    mode = 0600
  }
}
postmaster_address = postmaster@example.test
CONF
  dovecot -c "$dv/dovecot.conf" -F &
  dpid=$!
  for _ in $(seq 1 100); do [ -S "$dv/lmtp" ] && return 0; sleep 0.1; done
  echo "bench-postfix: Dovecot's LMTP socket did not appear; log:" >&2
  cat "$dv/dovecot.log" >&2 || true
  return 1
}

# --- Postfix: alternate instance via postfix -c ----------------------------
# write_postfix_config PORT: main.cf and master.cf in $pf. Every main.cf line
# is a change from Postfix's built-in defaults (`postconf -d`); nothing else
# is tuned (concurrency, process limits, fsync behaviour stay default).
write_postfix_config() {
  local port=$1
  mkdir -p "$pf" "$work/spool" "$work/data"
  chown postfix:postfix "$work/data"
  cat > "$pf/main.cf" <<CONF
# Throwaway instance for scripts/bench-postfix.sh.
# As Debian's main.cf: the 3.6+ defaults, and no backwards-compatibility noise.
compatibility_level = 3.6
# Our own queue and data (master.lock, caches) in the temp dir.
queue_directory = $work/spool
data_directory = $work/data
# Loopback only; the container may have no IPv6.
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.bench.example.test
# As Debian's main.cf (the built-in default adds nis:mail.aliases, which
# logs a warning in every smtpd when NIS is not set up).
alias_maps = hash:/etc/aliases
# Log to a file (there is no syslog here); needs the postlog service in
# master.cf, and the file's directory among the allowed prefixes.
maillog_file = $work/postfix.log
maillog_file_prefixes = $work
# Accept mail for $RCPT and hand it to Dovecot's LMTP.
virtual_mailbox_domains = example.test
virtual_mailbox_maps = texthash:$pf/vmailbox
virtual_transport = lmtp:unix:$dv/lmtp
CONF
  echo "$RCPT ok" > "$pf/vmailbox"
  # Debian's master.cf as shipped, with two changes: no chroot (its default
  # is y; the chroot would need copies of /etc files in the queue
  # directory), and the SMTP listener on our port instead of 25.
  cp /usr/share/postfix/master.cf.dist "$pf/master.cf"
  postconf -c "$pf" -F '*/*/chroot = n'
  postconf -c "$pf" -MX smtp/inet
  postconf -c "$pf" -M "$port/inet = $port inet n - n - - smtpd"
}

start_postfix() {
  start_dovecot
  local port
  port=$(free_port)
  write_postfix_config "$port"
  if ! postfix -c "$pf" start >"$work/postfix-start.log" 2>&1; then
    # Postfix's commands log to stderr only when it is a terminal.
    echo "bench-postfix: postfix start failed:" >&2
    script -qc "postfix -c '$pf' check" /dev/null >&2 || true
    cat "$work/postfix-start.log" "$work/postfix.log" >&2 2>/dev/null || true
    return 1
  fi
  wait_port "$port"
  addr=127.0.0.1:$port
  server_pid=$(awk '{print $1; exit}' "$work/spool/pid/master.pid")
  count_dir=$maildir
  log=$work/postfix.log
}
stop_postfix_all() { stop_postfix; stop_pid "$dpid"; dpid=; }

# measure.py OUT MAILDIR TIMEOUT LABEL LOG CMD...: runs the load generator
# (which prints one JSON line) and, if MAILDIR is set, polls the Maildir until
# the accepted messages are all in new/ + cur/ (or TIMEOUT seconds pass).
# With LOG (Postfix's maillog_file), it also averages Postfix's per-message
# delays=a/b/c/d of this run: a before the queue manager (smtpd, cleanup),
# b waiting in the queue manager for a delivery slot, c connection set-up,
# d the LMTP transaction (Dovecot writing and fsyncing the file). Writes the
# result as JSON to OUT and a summary line to stdout.
cat > "$work/measure.py" <<'PY'
import json, os, signal, subprocess, sys, time
out, maildir, limit, label, log = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
cmd = sys.argv[6:]
log_start = os.path.getsize(log) if log and os.path.exists(log) else 0
def count():
    n = 0
    for sub in ("new", "cur"):
        try:
            with os.scandir(os.path.join(maildir, sub)) as it:
                n += sum(1 for e in it if not e.name.startswith("."))
        except FileNotFoundError:
            pass
    return n
requested = int(cmd[cmd.index("-n") + 1])
base = count() if maildir else 0
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
def stop(*_):
    p.terminate()
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
res, e2e, have, timed_out = None, None, 0, False
while maildir:
    if res is None and p.poll() is not None:
        res = json.loads(p.stdout.read().strip().splitlines()[-1])
    want = requested if res is None else res["messages"]
    have = count() - base
    if have >= want:
        e2e = time.monotonic() - t0
        break
    if time.monotonic() - t0 > limit:
        timed_out = True
        print(f"{label}: gave up waiting for the Maildir after {limit:.0f} s: {have} of {want} delivered", file=sys.stderr)
        break
    # Counting costs ~5 ms per 10,000 files: poll often at first, then at
    # most every 0.5 s (under 0.5% of the run's time either way).
    time.sleep(min(0.5, max(0.02, (time.monotonic() - t0) / 200)))
if res is None:
    o, _ = p.communicate(timeout=limit)
    res = json.loads(o.strip().splitlines()[-1])
if not maildir:
    e2e, have = res["duration_s"], res["messages"]
delays = None
if log:
    time.sleep(0.2)  # postlogd writes asynchronously
    with open(log, "rb") as f:
        f.seek(log_start)
        sent = [l for l in f.read().decode(errors="replace").splitlines() if "status=sent" in l]
    ds = []
    for l in sent:
        for w in l.split():
            if w.startswith("delays="):
                ds.append([float(x) for x in w[7:].rstrip(",").split("/")])
    if ds:
        delays = [sum(d[i] for d in ds) / len(ds) for i in range(4)]
r = dict(bench=res, delivered=have, e2e=e2e, timed_out=timed_out, delays=delays)
json.dump(r, open(out, "w"))
errs = sum((res.get("errors") or {}).values())
line = (f"{label}: accepted {res['messages']}/{res['requested']} ({errs} errors) in {res['duration_s']:.2f} s = "
        f"{res['rate']:.0f} msg/s, p50 {res['p50_ms']:.2f} ms p99 {res['p99_ms']:.2f} ms")
if res.get("first_errors"):
    line += f" first errors: {res['first_errors']}"
if maildir:
    line += (f"; in the Maildir: {have} after {e2e:.2f} s = {have / e2e:.0f} msg/s" if e2e
             else f"; in the Maildir: only {have} (timed out)")
if delays:
    line += "; mean delays a/b/c/d " + "/".join(f"{x:.2f}" for x in delays) + " s"
print(line, flush=True)
PY

# run SERVER LABEL N C SIZE: one measured load.
run() {
  local server=$1 label=$2 n=$3 c=$4 size=$5
  python3 "$work/measure.py" "$work/$server.$label.json" "$count_dir" "$MAILDIR_TIMEOUT" "$server $label" "$log" \
    "$BENCH" -json -addr "$addr" -to "$RCPT" -from load@example.net -pid "$server_pid" -n "$n" -c "$c" -size "$size" &
  # In the background so that INT/TERM run the cleanup at once (bash
  # defers traps until a foreground child exits).
  mpid=$!
  wait "$mpid"
  mpid=
}

echo "# machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(postconf -h mail_version | sed 's/^/postfix /'), dovecot $(dovecot --version | cut -d' ' -f1), N=$N"

for server in $SERVERS; do
  "start_$server"
  echo "## $server on $addr"
  run "$server" warmup 500 8 4096 >/dev/null # as bench.sh; also creates the Maildir
  run "$server" 4k-c1 $((N / 5)) 1 4096
  run "$server" 4k-c16 "$N" 16 4096
  run "$server" 2k-c10 "$N" 10 2048
  if [ "$server" = postfix ]; then
    echo "postfix log: $(grep -c 'status=sent' "$work/postfix.log") sent, $(grep -c 'status=deferred' "$work/postfix.log") deferred, $(grep -c 'status=bounced' "$work/postfix.log") bounced; Maildir files: $(find "$maildir/new" "$maildir/cur" -type f | wc -l)"
    { grep -E 'warning|fatal|panic' "$work/postfix.log" || true; } | sed 's/^.*\]: /    /' | sort | uniq -c | sort -rn | head -5
    stop_postfix_all
  else
    stop_mailstead
  fi
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "## comparison (msg/s; Postfix \"accepted\" = queued, \"in Maildir\" = end to end)"
python3 - "$work" $SERVERS <<'PY'
import json, os, sys
work, servers = sys.argv[1], sys.argv[2:]
def load(s, l):
    try:
        return json.load(open(os.path.join(work, f"{s}.{l}.json")))
    except Exception:
        return None
loads = [("4k-c1", "4 KiB, C=1"), ("4k-c16", "4 KiB, C=16"), ("2k-c10", "2 KiB, C=10")]
head = ["workload"]
if "mailstead" in servers:
    head += ["mailstead (250 = stored)"]
if "postfix" in servers:
    head += ["Postfix accepted", "Postfix in Maildir", "Postfix p50 / p99 accept"]
if len(servers) == 2:
    head += ["mailstead ÷ Postfix end to end"]
rows = []
for l, name in loads:
    m, p = load("mailstead", l), load("postfix", l)
    row = [name]
    rate = lambda r: f'{r["delivered"] / r["e2e"]:,.0f}' if r and r["e2e"] else "-"
    if "mailstead" in servers:
        row.append(rate(m))
    if "postfix" in servers:
        row.append(f'{p["bench"]["rate"]:,.0f}' if p else "-")
        row.append(rate(p))
        row.append(f'{p["bench"]["p50_ms"]:.1f} / {p["bench"]["p99_ms"]:.1f} ms' if p else "-")
    if len(servers) == 2:
        try:
            row.append(f'{(m["delivered"] / m["e2e"]) / (p["delivered"] / p["e2e"]):.1f}×')
        except Exception:
            row.append("-")
    rows.append(row)
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
