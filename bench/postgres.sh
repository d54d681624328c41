#!/usr/bin/env bash
# The PostgreSQL ledger's benchmark (not a test: compare the ratios, measured in one run).
#
#   bench/postgres.sh            # N=100000 contacts
#   N=50000 ROUNDS=3 bench/postgres.sh
#   BIN=/path/to/cosmocast bench/postgres.sh   # measure another build (an older commit's)
#
# Starts a throwaway PostgreSQL cluster of Debian's `postgresql` binaries (initdb and pg_ctl in a
# temporary folder, a free loopback port, as the `postgres` user when run as root; fsync and
# synchronous_commit as shipped: every commit reaches the disk), and prints, in the same run:
# - one worker on it against the fixed-response sandbox, as a ratio to oha's raw rate there, with
#   the same campaign on an SQLite ledger beside it;
# - with a server answering in 20 ms, two joined workers (`run --join`) against one worker.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100000}"
ROUNDS="${ROUNDS:-3}"
CONC=16

export PATH="$HOME/.cargo/bin:$PATH"
command -v oha >/dev/null || cargo install oha --locked --quiet
bin_dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$bin_dir" ]; then
  echo "PostgreSQL is not installed: apt-get install postgresql" >&2
  exit 1
fi
cargo build --release --quiet --bin cosmocast
BIN="${BIN:-$PWD/target/release/cosmocast}"
tmp="$(mktemp -d)"
chmod 0755 "$tmp"
pids=()
as_pg=()
if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); fi
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "${as_pg[@]}" "$bin_dir/pg_ctl" -D "$tmp/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
export COSMOBOTS_TOKEN=bench COSMOBOTS_CHANNEL_ID=bench

# The cluster.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir "$tmp/pg" "$tmp/sock"
if [ "$(id -u)" -eq 0 ]; then chown postgres "$tmp/pg" "$tmp/sock"; fi
"${as_pg[@]}" "$bin_dir/initdb" -D "$tmp/pg" -A trust -U postgres >/dev/null
"${as_pg[@]}" "$bin_dir/pg_ctl" -D "$tmp/pg" -w -l "$tmp/sock/server.log" \
  -o "-p $port -k $tmp/sock -c listen_addresses=127.0.0.1" start >/dev/null
database() { # name -> a fresh database's URL
  "$bin_dir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE $1" >/dev/null
  echo "postgres://postgres@127.0.0.1:$port/$1"
}

. bench/lib.sh
campaign() { # file url csv concurrency
  cat > "$1" <<YAML
version: 1
name: bench
api:
  url: $2
contacts:
  file: $3
  key: "{{ customer_id }}"
contact:
  external_id: "{{ customer_id }}"
  first_name: "{{ first_name | title }}"
  mobile_phone: "{{ phone }}"
messages:
  - type: text
    text: "Hello {{ first_name | title }}, your {{ plan }} plan renews soon."
send:
  concurrency: $4
  max_consecutive_failures: 0
YAML
}
seconds() { # command... -> wall seconds
  local start end
  start="$(date +%s.%N)"
  "$@" >/dev/null 2>"$tmp/last.err" || { code=$?; [ "$code" -eq 3 ] || [ "$code" -eq 4 ] || { cat "$tmp/last.err" >&2; exit 1; }; }
  end="$(date +%s.%N)"
  awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}'
}

cat > "$tmp/body.json" <<'JSON'
{"destination":"contact","contact":{"id":"new_contact","external_id":"C1","first_name":"Name1","mobile_phone":"5511900000001"},"message":[{"type":"text","data":{"text":"Hello Name1, your gold plan renews soon."}}]}
JSON
sandbox fast --no-validate; fast="$URL"
oha_rate() {
  oha -z 5s -c "$CONC" --no-tui -m POST -H "token: bench" -H "channel_id: bench" \
    -T application/json -D "$tmp/body.json" "$fast" | awk '/Requests\/sec/ {printf "%.0f", $2}'
}
contacts "$N" "$tmp/contacts.csv"
campaign "$tmp/fast.yaml" "$fast" contacts.csv "$CONC"

# One worker: the PostgreSQL ledger and the SQLite one in turn, oha before and after each pair.
oha_rates="$(oha_rate)"
pg_runs=""
lite_runs=""
for r in $(seq "$ROUNDS"); do
  url="$(database fast$r)"
  pg_runs="$pg_runs $(seconds "$BIN" run "$tmp/fast.yaml" --progress none --ledger "$url")"
  lite_runs="$lite_runs $(seconds "$BIN" run "$tmp/fast.yaml" --progress none --ledger "$tmp/fast$r.sqlite")"
  oha_rates="$oha_rates $(oha_rate)"
done

# Joined workers, with a server answering in 20 ms: one worker, then two, on fresh databases.
sandbox slow --no-validate --latency 20ms; slow="$URL"
JOINED_N="${JOINED_N:-16000}"
contacts "$JOINED_N" "$tmp/slow.csv"
campaign "$tmp/slow.yaml" "$slow" slow.csv "$CONC"
one="$(seconds "$BIN" run "$tmp/slow.yaml" --progress none --join --ledger "$(database slow1)")"
url="$(database slow2)"
start="$(date +%s.%N)"
"$BIN" run "$tmp/slow.yaml" --progress none --join --ledger "$url" >/dev/null 2>&1 &
a=$!
"$BIN" run "$tmp/slow.yaml" --progress none --join --ledger "$url" >/dev/null 2>&1 &
b=$!
wait "$a" "$b"
two="$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')"

python3 - "$N" "$oha_rates" "$pg_runs" "$lite_runs" "$JOINED_N" "$one" "$two" "$(nproc)" <<'PY'
import statistics as st, sys
n = int(sys.argv[1])
oha = [int(x) for x in sys.argv[2].split()]
pg = [n / float(x) for x in sys.argv[3].split()]
lite = [n / float(x) for x in sys.argv[4].split()]
around = [(oha[i] + oha[i + 1]) / 2 for i in range(len(pg))]
pg_r = [100 * p / r for p, r in zip(pg, around)]
lite_r = [100 * p / r for p, r in zip(lite, around)]
jn, one, two = int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
print(f"""
cosmocast on PostgreSQL ({sys.argv[8]} cores, a local cluster with fsync)
  raw HTTP (oha -c16, fixed-response server)   {round(st.median(oha))} req/s (median of: {' '.join(map(str, oha))})
  one worker, PostgreSQL ledger, {n} contacts   {round(st.median(pg))} msg/s = {st.median(pg_r):.1f}% of raw (rounds: {' '.join(f'{x:.1f}' for x in pg_r)})
  the same on an SQLite ledger                  {round(st.median(lite))} msg/s = {st.median(lite_r):.1f}% of raw (rounds: {' '.join(f'{x:.1f}' for x in lite_r)})
  20 ms server, {jn} contacts: one worker       {one:.2f} s = {jn / one:.0f} msg/s
                            two joined workers  {two:.2f} s = {jn / two:.0f} msg/s = {one / two:.2f}x one worker""")
PY
