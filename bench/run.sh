#!/usr/bin/env bash
# The cosmocast benchmark (not a test: figures vary with the machine; compare the ratios, which
# are measured in one run). Prints throughput against a fixed-response server next to the raw HTTP
# rate of oha and of two bare client loops at the same concurrency, the latency-bound rate, peak
# RSS, `check` time, resume time and how well a rate ceiling holds.
#
#   bench/run.sh                 # N=200000 contacts, BIG=1000000 for the memory/check/resume figures
#   N=50000 BIG=200000 bench/run.sh
#   QUICK=1 bench/run.sh         # the throughput figures only
#   ROUNDS=5 bench/run.sh        # campaign runs between oha measurements (default 3; the median counts)
#   PROFILE=bench bench/run.sh   # another cargo profile (CARGO_TARGET_DIR and CARGO_ARGS are honoured)
#   BIN=/path/to/cosmocast bench/run.sh   # measure another build of cosmocast (an older commit's)
#   BASE=/path/to/cosmocast bench/run.sh  # and a second build beside it: each round runs BIN, then
#                                         # BASE, between the same oha measurements (before/after)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-200000}"
BIG="${BIG:-1000000}"
CONC=16

need() { command -v "$1" >/dev/null 2>&1; }
if [ ! -x /usr/bin/time ]; then
  echo "installing time from Debian's packages..." >&2
  (apt-get update -qq && apt-get install -y -qq time) >/dev/null
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! need oha; then
  echo "installing oha (the raw HTTP load generator) with cargo: a few minutes, once..." >&2
  cargo install oha --locked --quiet
fi
PROFILE="${PROFILE:-release}"
# shellcheck disable=SC2086 # CARGO_ARGS is a list of words
cargo build ${CARGO_ARGS:-} --profile "$PROFILE" --quiet --bin cosmocast --example reqwest_loop --example client_loop
OUT="$(realpath "${CARGO_TARGET_DIR:-target}")/$PROFILE"
BIN="${BIN:-$OUT/cosmocast}"
LOOP="$OUT/examples/reqwest_loop"
CLIENT_LOOP="$OUT/examples/client_loop"
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
export COSMOBOTS_TOKEN=bench COSMOBOTS_CHANNEL_ID=bench

. bench/lib.sh
campaign() { # file url csv concurrency [extra send lines]
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
  - type: buttons
    text: "Keep your {{ plan }} plan?"
    buttons:
      - { title: "Yes", type: payload, value: "renew-yes" }
send:
  concurrency: $4
  max_consecutive_failures: 0
${5:-}
YAML
}
timed() { # label command... -> "seconds peak_kb" in $tmp/label.time
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$tmp/$label.time" "$@" > "$tmp/$label.out" 2> "$tmp/$label.err"
}
secs() { cut -d' ' -f1 "$tmp/$1.time"; }
rss_mb() { awk '{printf "%.1f", $2/1024}' "$tmp/$1.time"; }

contacts "$N" "$tmp/contacts.csv"
sandbox fast --no-validate; fast="$URL"

# Raw HTTP rate: oha against the same server, same concurrency, a request of the same size. The
# machine's speed drifts by 10-20% within minutes here, so the campaign runs ROUNDS times between
# oha measurements; each run is compared with the oha rates just before and just after it, and
# the median of those ratios is reported (with every ratio, so the spread shows).
cat > "$tmp/body.json" <<'JSON'
{"destination":"contact","contact":{"id":"new_contact","external_id":"C1","first_name":"Name1","mobile_phone":"5511900000001"},"message":[{"type":"text","data":{"text":"Hello Name1, your gold plan renews soon."}},{"type":"buttons","data":{"text":"Keep your gold plan?","buttons":[{"title":"Yes","type":"payload","value":"renew-yes"}]}}]}
JSON
oha_rate() {
  oha -z 5s -c "$CONC" --no-tui -m POST -H "token: bench" -H "channel_id: bench" \
    -T application/json -D "$tmp/body.json" "$fast" | awk '/Requests\/sec/ {printf "%.0f", $2}'
}
ROUNDS="${ROUNDS:-3}"
oha_rates="$(oha_rate)"
# The same requests from two bare loops, nothing else around them: plain reqwest, and cosmocast's
# own client (reqwest as the senders build it).
bare="$("$LOOP" "$fast" "$tmp/body.json" "$N" "$CONC")"
client="$("$CLIENT_LOOP" "$fast" "$tmp/body.json" "$N" "$CONC")"

campaign "$tmp/throughput.yaml" "$fast" contacts.csv "$CONC"
runs=""
base_runs=""
rss_kb=0
for _ in $(seq "$ROUNDS"); do
  rm -f "$tmp"/run.sqlite*
  timed run "$BIN" run "$tmp/throughput.yaml" --progress none --json --ledger "$tmp/run.sqlite"
  steady="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["this_run"]; print(round(r["requests"]/r["seconds"]))' "$tmp/run.out")"
  runs="$runs $(secs run):$steady"
  rss_kb="$(awk -v a="$rss_kb" '{print ($2 > a ? $2 : a)}' "$tmp/run.time")"
  if [ -n "${BASE:-}" ]; then
    rm -f "$tmp"/run.sqlite*
    timed base "$BASE" run "$tmp/throughput.yaml" --progress none --ledger "$tmp/run.sqlite"
    base_runs="$base_runs $(secs base)"
  fi
  oha_rates="$oha_rates $(oha_rate)"
done
# -> raw (median oha), run_rate and run_steady (medians), their median ratios, and each round's;
# with BASE, its whole-process ratio too and BIN's time over BASE's, round by round.
eval "$(python3 - "$N" "$oha_rates" "$runs" "$base_runs" <<'PY'
import statistics as st, sys
n = int(sys.argv[1])
oha = [int(x) for x in sys.argv[2].split()]
runs = [(n / float(a), int(b)) for a, b in (r.split(":") for r in sys.argv[3].split())]
raws = [(oha[i] + oha[i + 1]) / 2 for i in range(len(runs))]
whole = [100 * w / r for (w, _), r in zip(runs, raws)]
steady = [100 * s / r for (_, s), r in zip(runs, raws)]
print(f"raw={round(st.median(oha))}")
print(f"run_rate={round(st.median(w for w, _ in runs))}")
print(f"run_steady={round(st.median(s for _, s in runs))}")
print(f"ratio_whole={st.median(whole):.1f}")
print(f"ratio_steady={st.median(steady):.1f}")
print(f"rounds_whole='{' '.join(f'{x:.1f}' for x in whole)}'")
print(f"rounds_steady='{' '.join(f'{x:.1f}' for x in steady)}'")
base = [n / float(a) for a in sys.argv[4].split()]
if base:
    base_whole = [100 * b / r for b, r in zip(base, raws)]
    pairs = [b / w for (w, _), b in zip(runs, base)]
    print(f"base_line='BASE: {round(st.median(base))} msg/s = {st.median(base_whole):.1f}% of raw"
          f" ({' '.join(f'{x:.1f}' for x in base_whole)}); BIN time / BASE time, round by round:"
          f" median {st.median(pairs):.3f} ({' '.join(f'{x:.3f}' for x in pairs)})'")
else:
    print("base_line=''")
PY
)"
timed check "$BIN" check "$tmp/throughput.yaml"
if [ -n "${QUICK:-}" ]; then # throughput only, for profiling rounds
  echo "raw $raw (oha: $oha_rates) bare $bare client $client run $run_rate steady $run_steady:" \
    "median $ratio_whole% ($rounds_whole) / $ratio_steady% ($rounds_steady) of raw"
  [ -z "$base_line" ] || echo "$base_line"
  exit 0
fi

# Latency-bound: 50 ms per answer at concurrency 64 allows 1280 msg/s at best.
sandbox slow --no-validate --latency 50ms; slow="$URL"
contacts 12800 "$tmp/slow.csv"
campaign "$tmp/slow.yaml" "$slow" slow.csv 64
timed slow "$BIN" run "$tmp/slow.yaml" --progress none --json --ledger "$tmp/slow.sqlite"
slow_rate="$(awk -v s="$(secs slow)" 'BEGIN{printf "%.0f", 12800/s}')"
# The same run timed from its first claim to its last outcome (start-up and pre-flight excluded).
slow_steady="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["this_run"]; print(round(r["requests"]/r["seconds"]))' "$tmp/slow.out")"

# A million rows: memory of run and check, check time, and a resume with nothing left to send.
contacts "$BIG" "$tmp/big.csv"
campaign "$tmp/big.yaml" "$fast" big.csv "$CONC"
timed bigcheck "$BIN" check "$tmp/big.yaml"
timed bigrun "$BIN" run "$tmp/big.yaml" --progress none --ledger "$tmp/big.sqlite"
timed resume "$BIN" run "$tmp/big.yaml" --progress none --ledger "$tmp/big.sqlite"

# The suppression list: an import of IMPORT lines (default 100,000; target: at most 2 s), phones
# written the Brazilian way, into a fresh ledger.
IMPORT="${IMPORT:-100000}"
python3 - "$IMPORT" >"$tmp/optouts.csv" <<'PY'
import sys
print("Nome;Telefone;Motivo")
for i in range(int(sys.argv[1])):
    print(f"P{i};(11) 9{7000_0000 + i:08d};pediu")
PY
timed import "$BIN" optouts --ledger "$tmp/optouts.sqlite" import "$tmp/optouts.csv" --column Telefone --country BR

# Rate ceiling: 500/s for 12 s of sending, counted at the server over the first 10 s.
sandbox logged --log "$tmp/accepted.jsonl"; logged="$URL"
contacts 6000 "$tmp/rate.csv"
campaign "$tmp/rate.yaml" "$logged" rate.csv "$CONC" "  rate: 500/s"
timed rate "$BIN" run "$tmp/rate.yaml" --progress none --ledger "$tmp/rate.sqlite"
in_ten="$(python3 - "$tmp/accepted.jsonl" <<'PY'
import json, sys
ts = sorted(json.loads(l)["t"] for l in open(sys.argv[1]) if l.strip())
print(sum(1 for t in ts if t < ts[0] + 10.0))
PY
)"

cat <<REPORT

cosmocast benchmark ($(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))
  raw HTTP (oha -c$CONC, fixed-response server)   $raw req/s (median of: $oha_rates)
  bare reqwest loop, same requests               $bare req/s  = $(awk -v a="$bare" -v b="$raw" 'BEGIN{printf "%.1f%%", 100*a/b}') of raw
  bare loop of cosmocast's client, same requests $client req/s  = $(awk -v a="$client" -v b="$raw" 'BEGIN{printf "%.1f%%", 100*a/b}') of raw
  cosmocast run, $N contacts, concurrency $CONC     $run_rate msg/s  = $ratio_whole% of raw (whole process, pre-flight included; peak RSS $(awk -v k="$rss_kb" 'BEGIN{printf "%.1f", k/1024}') MB)
                                                  $run_steady msg/s  = $ratio_steady% of raw while sending (first claim to last outcome)
                                                  (medians of $ROUNDS runs, each against the oha rates around it: $rounds_whole / $rounds_steady)
${base_line:+  $base_line
}  latency-bound: 50 ms, concurrency 64            $slow_rate msg/s  = $(awk -v a="$slow_rate" 'BEGIN{printf "%.1f%%", 100*a/1280}') of the 1280 msg/s ideal (whole process)
                                                  $slow_steady msg/s  = $(awk -v a="$slow_steady" 'BEGIN{printf "%.1f%%", 100*a/1280}') of it while sending
  check, $N rows                                  $(secs check) s       (peak RSS $(rss_mb check) MB)
  check, $BIG rows                                $(secs bigcheck) s       (peak RSS $(rss_mb bigcheck) MB)
  run, $BIG rows                                  $(secs bigrun) s       (peak RSS $(rss_mb bigrun) MB)
  resume of the finished $BIG-row campaign        $(secs resume) s       (peak RSS $(rss_mb resume) MB)
  optouts import, $IMPORT lines                   $(secs import) s       (peak RSS $(rss_mb import) MB)
  rate: 500/s ceiling, first 10 s at the server   $in_ten requests = $(awk -v a="$in_ten" 'BEGIN{printf "%+.1f%%", 100*(a-5000)/5000}') of 5000
REPORT
