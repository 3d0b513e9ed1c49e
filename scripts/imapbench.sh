#!/usr/bin/env bash
# IMAP benchmark (issue 3): the same load, from cmd/mailstead-imapbench,
# against mailstead and against Dovecot 2.3 from Debian (Maildir), one
# server at a time, on loopback, plain TCP (TLS costs the same for both and
# is not what is compared). Prints each run's details and a comparison table
# at the end. Needs root (Dovecot's mail processes run as unprivileged
# per-account uids) and installs dovecot-imapd and dovecot-lmtpd if missing.
#
# Usage: scripts/imapbench.sh
# Environment (defaults are the issue's sizes):
#   BIG=100000        messages in the big mailbox
#   MIXED_CLIENTS="10 50"  MIXED_MSGS=1000  MIXED_DURATION=30s
#   IDLE_SESSIONS=2000  IDLE_ACCOUNTS=40  IDLE_DELIVERIES=50
#   SERVERS="mailstead dovecot"
#   MODES="big mixed idle idle-tls"   idle-tls: the idle run over implicit TLS
#   ARGON2_IDLE=1     also run mailstead's idle mode with argon2id accounts
#
# Accounts: every account on both servers has the same SHA512-CRYPT password
# hash (Dovecot's passwd-file and `mailstead account add --hash`), so both
# servers pay the same for a login. mailstead's default for new passwords is
# argon2id (19 MiB per verification); ARGON2_IDLE=1 shows what that does to
# memory when 2,000 sessions log in at once.
set -euo pipefail
cd "$(dirname "$0")/.."
BIG=${BIG:-100000}
MIXED_CLIENTS=${MIXED_CLIENTS:-"10 50"}
MIXED_MSGS=${MIXED_MSGS:-1000}
MIXED_DURATION=${MIXED_DURATION:-30s}
IDLE_SESSIONS=${IDLE_SESSIONS:-2000}
IDLE_ACCOUNTS=${IDLE_ACCOUNTS:-40}
IDLE_DELIVERIES=${IDLE_DELIVERIES:-50}
SERVERS=${SERVERS:-"mailstead dovecot"}
MODES=${MODES:-"big mixed idle idle-tls"}
ARGON2_IDLE=${ARGON2_IDLE:-1}
PASS="bench pw"
DOMAIN=bench.example.test
max_mixed=0
for c in $MIXED_CLIENTS; do [ "$c" -gt "$max_mixed" ] && max_mixed=$c; done

work=$(mktemp -d /tmp/imapbench.XXXXXX)
chmod 755 "$work" # Dovecot's mail processes run as other uids
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)" # 2,000 sessions need 2,000 descriptors on both sides
go build -o "$work/bin/mailstead" ./cmd/mailstead
go build -o "$work/bin/mailstead-imapbench" ./cmd/mailstead-imapbench
BIN=$work/bin/mailstead
TOOL=$work/bin/mailstead-imapbench
HASH=$(openssl passwd -6 -salt imapbench "$PASS")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_mib() { awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/"$1"/status; }

# accounts NAME-FORMAT COUNT: the account names (format with %d).
accounts() { for ((i = 0; i < $2; i++)); do printf "${1/\%d/%s}\n" "$i"; done; }
all_accounts() {
  echo "big@$DOMAIN"
  accounts "mixed%d@$DOMAIN" "$max_mixed"
  accounts "idle%d@$DOMAIN" "$IDLE_ACCOUNTS"
}

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
name = "smtp"
protocol = "smtp"
address = "127.0.0.1:0"
[[listener]]
name = "imap"
protocol = "imap"
address = "127.0.0.1:0"
allow_insecure_auth = true
[[listener]]
name = "imaps"
protocol = "imaps"
address = "127.0.0.1:0"
[limits]
imap_connections_per_user_ip = 50
TOML
  "$BIN" --config "$dir/mailstead.toml" domain add "$DOMAIN" >/dev/null
  while read -r a; do
    "$BIN" --config "$dir/mailstead.toml" account add "$a" --hash "{SHA512-CRYPT}$HASH" >/dev/null
  done < <(all_accounts)
  if [ "$ARGON2_IDLE" = 1 ]; then
    while read -r a; do
      echo "$PASS" | "$BIN" --config "$dir/mailstead.toml" account add "$a" --password-stdin >/dev/null
    done < <(accounts "argon%d@$DOMAIN" "$IDLE_ACCOUNTS")
  fi
  rm -f "$dir/ready.json"
  "$BIN" --config "$dir/mailstead.toml" serve --ready-file "$dir/ready.json" 2>"$dir/server.log" &
  pid=$!
  for _ in $(seq 1 200); do [ -s "$dir/ready.json" ] && break; sleep 0.05; done
  imap=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listeners"]["imap"])' "$dir/ready.json")
  imaps=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listeners"]["imaps"])' "$dir/ready.json")
  deliver=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listeners"]["smtp"])' "$dir/ready.json")
  lmtp=
}

start_dovecot() {
  local dir=$work/dovecot
  command -v dovecot >/dev/null && [ -x /usr/lib/dovecot/lmtp ] || {
    apt-get install -y -qq --no-install-recommends dovecot-imapd dovecot-lmtpd >/dev/null
  }
  mkdir -p "$dir/run" "$dir/mail"
  local iport sport lport n=0
  iport=$(free_port)
  sport=$(free_port)
  lport=$(free_port)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
  # One uid per account: Dovecot's IDLE uses one inotify instance per
  # imap process, and the kernel allows 128 per uid by default
  # (fs.inotify.max_user_instances); 50 sessions per account stay below.
  : > "$dir/passwd"
  while read -r a; do
    uid=$((40000 + n))
    n=$((n + 1))
    mkdir -p "$dir/mail/$a"
    chown "$uid:$uid" "$dir/mail/$a"
    echo "$a:{SHA512-CRYPT}$HASH:$uid:$uid::$dir/mail/$a::" >> "$dir/passwd"
  done < <(all_accounts)
  cat > "$dir/dovecot.conf" <<CONF
# Dovecot 2.3 defaults, plus only what a 2,000-session benchmark on
# loopback needs.
base_dir = $dir/run
state_dir = $dir/state
instance_name = imapbench
log_path = $dir/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <$dir/cert.pem
ssl_key = <$dir/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 40000
passdb {
  driver = passwd-file
  args = $dir/passwd
}
userdb {
  driver = passwd-file
  args = $dir/passwd
}
default_process_limit = 3000
default_client_limit = 10000
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $iport
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $sport
  }
}
service imap {
  process_limit = 3000
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lport
  }
}
protocol imap {
  mail_max_userip_connections = 50
}
postmaster_address = postmaster@$DOMAIN
CONF
  mkdir -p "$dir/state"
  dovecot -c "$dir/dovecot.conf" -F &
  pid=$!
  for _ in $(seq 1 100); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$iport" 2>/dev/null && break
    sleep 0.1
  done
  imap=127.0.0.1:$iport
  imaps=127.0.0.1:$sport
  deliver=127.0.0.1:$lport
  lmtp=-lmtp
}

stop_server() {
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
}

# bench SERVER LABEL TOOL-ARGS...: runs the tool, keeps its JSON result,
# prints the human-readable form.
bench() {
  local server=$1 label=$2
  shift 2
  echo "### $server: $label"
  "$TOOL" -addr "$addr" -pass "$PASS" -pid "$pid" -json-file "$work/$server.$label.json" "$@" || echo "(exit status $?)"
}

echo "# machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(go version | cut -d' ' -f3), $(dovecot --version 2>/dev/null | sed 's/^/dovecot /' || echo 'dovecot not installed yet')"
echo "# big=$BIG mixed clients=[$MIXED_CLIENTS] x $MIXED_MSGS msgs for $MIXED_DURATION, idle $IDLE_SESSIONS sessions / $IDLE_ACCOUNTS accounts, $IDLE_DELIVERIES deliveries"

for server in $SERVERS; do
  "start_$server"
  echo "## $server (pid $pid, imap $imap, delivery $deliver), RSS at start $(rss_mib "$pid") MiB"
  t0=$(date +%s)
  addr=$imap
  case " $MODES " in *" big "*)
    bench "$server" big -mode big -user "big@$DOMAIN" -messages "$BIG" -v ;;
  esac
  case " $MODES " in *" mixed "*)
    for c in $MIXED_CLIENTS; do
      bench "$server" "mixed$c" -mode mixed -accounts "mixed%d@$DOMAIN" -clients "$c" -messages "$MIXED_MSGS" -duration "$MIXED_DURATION" -v
    done ;;
  esac
  case " $MODES " in *" idle "*)
    bench "$server" idle -mode idle -accounts "idle%d@$DOMAIN" -num-accounts "$IDLE_ACCOUNTS" -sessions "$IDLE_SESSIONS" \
      -deliveries "$IDLE_DELIVERIES" -smtp "$deliver" $lmtp -v ;;
  esac
  case " $MODES " in *" idle-tls "*)
    addr=$imaps
    bench "$server" idle-tls -mode idle -tls implicit -accounts "idle%d@$DOMAIN" -num-accounts "$IDLE_ACCOUNTS" -sessions "$IDLE_SESSIONS" \
      -deliveries "$IDLE_DELIVERIES" -smtp "$deliver" $lmtp -v
    addr=$imap ;;
  esac
  if [ "$server" = mailstead ] && [ "$ARGON2_IDLE" = 1 ]; then
    bench "$server" idle-argon2 -mode idle -accounts "argon%d@$DOMAIN" -num-accounts "$IDLE_ACCOUNTS" -sessions "$IDLE_SESSIONS" \
      -deliveries 5 -smtp "$deliver" -v
  fi
  echo "## $server done in $(($(date +%s) - t0)) s; data: $(du -sh "$work/$server" | cut -f1)"
  stop_server
done

echo
echo "## comparison (times in ms; memory of the server's whole process tree)"
python3 - "$work" $SERVERS <<'PY'
import json, os, sys
work, servers = sys.argv[1], sys.argv[2:]
def load(server, label):
    p = os.path.join(work, f"{server}.{label}.json")
    try:
        return json.load(open(p))
    except Exception:
        return None
ms = lambda ns: f"{ns / 1e6:.1f}"
mib = lambda b: f"{b / 2**20:.1f}"
rows = []
def row(name, f):
    vals = []
    for s in servers:
        try:
            vals.append(f(s))
        except Exception:
            vals.append("-")
    rows.append([name] + vals)
big = {s: load(s, "big") for s in servers}
if any(big.values()):
    row("big: messages", lambda s: str(big[s]["Messages"]))
    row("big: fill rate (msg/s, MULTIAPPEND)", lambda s: f'{big[s]["Appended"] / (big[s]["AppendTime"] / 1e9):.0f}')
    for i, op in enumerate(["SELECT", "UID FETCH 1:* (FLAGS)", "UID SEARCH UNSEEN", "SEARCH TEXT", "FETCH 1:100 BODY.PEEK[]"]):
        row(f"big: {op} first/best ms", lambda s, i=i: f'{ms(big[s]["Ops"][i]["First"])} / {ms(big[s]["Ops"][i]["Best"])}')
    row("big: hits UNSEEN / TEXT (expected)", lambda s: f'{big[s]["Ops"][2]["Count"]} / {big[s]["Ops"][3]["Count"]} ({big[s]["WantUnseen"]} / {big[s]["WantWord"]})')
    row("big: server PSS after, MiB", lambda s: mib(big[s]["MemAfter"]["PSS"]))
labels = sorted([f[len(servers[0]) + 1:-5] for f in os.listdir(work) if f.startswith(servers[0] + ".mixed")], key=lambda l: int(l[5:]))
for l in labels:
    m = {s: load(s, l) for s in servers}
    row(f"{l}: commands/s", lambda s: f'{m[s]["Rate"]:.0f}')
    row(f"{l}: errors", lambda s: str(m[s]["Errors"]))
    def slowest(s):
        o = max(m[s]["Ops"], key=lambda o: o["P99"])
        return f'{ms(o["P99"])} ({o["Op"]})'
    row(f"{l}: p99 of the slowest command, ms", slowest)
    row(f"{l}: server PSS under load, MiB", lambda s: mib(m[s]["MemLoaded"]["PSS"]))
for l in ("idle", "idle-tls"):
    idle = {s: load(s, l) for s in servers}
    if not any(idle.values()):
        continue
    row(f"{l}: sessions", lambda s: str(idle[s]["Sessions"]))
    row(f"{l}: per session RSS / PSS, KiB", lambda s: f'{idle[s]["PerSessionRSS"] / 1024:.0f} / {idle[s]["PerSessionPSS"] / 1024:.0f}')
    row(f"{l}: server RSS / PSS all idle, MiB", lambda s: f'{mib(idle[s]["MemIdle"]["RSS"])} / {mib(idle[s]["MemIdle"]["PSS"])}')
    row(f"{l}: delivery->EXISTS in the first session, mean/p99 ms", lambda s: f'{ms(idle[s]["First"]["Mean"])} / {ms(idle[s]["First"]["P99"])}')
    row(f"{l}: delivery->EXISTS in all the account's sessions, mean/p99 ms", lambda s: f'{ms(idle[s]["All"]["Mean"])} / {ms(idle[s]["All"]["P99"])}')
    row(f"{l}: missed deliveries / disconnects", lambda s: f'{idle[s]["Missed"]} / {idle[s]["UnexpectedDisconnects"]}')
w = [max(len(r[i]) for r in rows + [["", *servers]]) for i in range(len(servers) + 1)]
print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(["", *servers])) + " |")
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print("| " + " | ".join(v.ljust(w[i]) for i, v in enumerate(r)) + " |")
a = load("mailstead", "idle-argon2")
if a:
    print(f'\nmailstead idle with argon2id accounts: {a["Sessions"]} sessions, set up in {a["SetupTime"] / 1e9:.1f} s, '
          f'RSS {mib(a["MemBase"]["RSS"])} -> {mib(a["MemIdle"]["RSS"])} MiB ({a["PerSessionRSS"] / 1024:.0f} KiB per session)')
PY
