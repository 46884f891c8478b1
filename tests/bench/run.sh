#!/usr/bin/env bash
# The benchmarks of docs/performance.md in one run, all ratios measured on the same machine in the
# same run: generated exports; the raw LMDB and ZeroMQ ceilings; the collector alone; query
# latency (read-only, a place of 10 neighbourhoods, whole command, query endpoint), idle and while
# ingest runs; `totalplace verify` and `totalplace backup` of the store beside the running
# collector; the collector again with a store that keeps no checksums (their cost); four agents to
# a collector end to end with durable
# acks; one agent taking one file of 2,000,000 rows (its memory); PostgreSQL and SQLite loading the
# same files. Prints a summary and writes every figure to
# WORK/results (KEY=VALUE) and WORK/summary.md.
#
#   bash tests/bench/run.sh                 10M records (about 30 minutes on 2 cores)
#   bash tests/bench/run.sh --quick         1M records
#   bash tests/bench/run.sh --records N     any size
#   bash tests/bench/run.sh --smoke         10k records, no peers, no build (ctest bench-smoke)
#   bash tests/bench/run.sh --records 50000000 --scaling-only   the collector alone only: its rate
#                                           over the store's growth, in fifths (10M at 50M)
# Other options: --seed S, --window W (batches in flight per agent; default: the agent's own
# default), --no-postgres, --no-sqlite, --work DIR, --keep (keep WORK), --build DIR (default
# build-bench), --step N (records per step of the scaling figure).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
records=10000000
seed=1
window=""
postgres=1
sqlite=1
scaling_only=0
step=""
smoke=0
keep=0
work=""
build_dir="$top/build-bench"
while (($#)); do
  case $1 in
    --quick) records=1000000 ;;
    --records) records=$2; shift ;;
    --smoke) records=10000; postgres=0; sqlite=0; smoke=1 ;;
    --seed) seed=$2; shift ;;
    --window) window=$2; shift ;;
    --no-postgres) postgres=0 ;;
    --no-sqlite) sqlite=0 ;;
    --scaling-only) scaling_only=1; postgres=0; sqlite=0 ;;
    --step) step=$2; shift ;;
    --work) work=$2; shift ;;
    --keep) keep=1 ;;
    --build) build_dir=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $records =~ ^[0-9]+$ ]] && ((records >= 1000)) || { echo "run.sh: --records wants at least 1000" >&2; exit 2; }

# ---------------------------------------------------------------- build
if [[ -n ${TOTALPLACE_BIN:-} ]]; then
  bin=$TOTALPLACE_BIN
else
  bin=$build_dir
  echo "== building $bin (Release)"
  cmake -S "$top" -B "$bin" -DCMAKE_BUILD_TYPE=Release -DTOTALPLACE_WERROR=ON >/dev/null
  cmake --build "$bin" -j "$(nproc)" >/dev/null
fi
COLLECTOR=$bin/collector/totalplace-collector
AGENT=$bin/agents/totalplace-agent
CLI=$bin/collector/totalplace
GEN=$bin/tests/bench/tp_gen
PUSH=$bin/tests/bench/tp_push
LMDB_CEILING=$bin/tests/bench/tp_lmdb_ceiling
LATENCY=$bin/tests/bench/tp_latency
MEMWATCH=$bin/tests/bench/tp_memwatch
NOCHECKSUMS=$bin/tests/bench/tp_collector_nochecksums
for tool in "$COLLECTOR" "$AGENT" "$CLI" "$GEN" "$PUSH" "$LMDB_CEILING" "$LATENCY" "$MEMWATCH" "$NOCHECKSUMS"; do
  [[ -x $tool ]] || { echo "run.sh: $tool is not built" >&2; exit 1; }
done
command -v gawk >/dev/null || { echo "run.sh: gawk is needed (deploy/install-deps.sh)" >&2; exit 1; }

# ---------------------------------------------------------------- housekeeping
[[ -n $work ]] || work=$(mktemp -d /tmp/tp-bench.XXXXXX)
mkdir -p "$work"
chmod 755 "$work" # PostgreSQL's own user must reach its data folder inside
results=$work/results
: >"$results"
declare -a started=()
pg_ctl_stop=""

cleanup() {
  local status=$?
  for pid in "${started[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  [[ -n $pg_ctl_stop ]] && eval "$pg_ctl_stop" >/dev/null 2>&1 || true
  if ((status != 0)); then
    echo "run.sh: FAILED (status $status); logs in $work" >&2
    for log in "$work"/*.log; do [[ -f $log ]] && { echo "== $log" >&2; tail -n 15 "$log" >&2; }; done
  elif ((keep == 0)); then
    rm -rf "$work"
  else
    echo "work folder kept: $work"
  fi
}
trap cleanup EXIT

fail() { echo "run.sh: FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
# record SECTION FILE: appends a tool's KEY=VALUE output under a section prefix.
record() { sed "s/^/$1./" "$2" >>"$results"; }
put() { echo "$1=$2" >>"$results"; }
get() { gawk -F= -v k="$1" '$1 == k { v = substr($0, length(k) + 2) } END { print v }' "$results"; }
ratio() { gawk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

# A free loopback port below the ephemeral range (so no outgoing connection holds it), that
# nothing listens on.
listening() { # listening PORT: a TCP socket listens on it (from /proc, no other tool needed)
  gawk -v port="$(printf '%04X' "$1")" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 3) == port { found = 1 }
      END { exit !found }' /proc/net/tcp /proc/net/tcp6
}
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((15000 + RANDOM % 15000))
    listening "$port" || { echo "$port"; return; }
  done
  fail "no free loopback port"
}

wait_port() { # wait_port PORT SECONDS
  local deadline=$((SECONDS + $2))
  until listening "$1"; do
    ((SECONDS < deadline)) || fail "nothing listens on port $1 after $2 s"
    sleep 0.05
  done
}

# The collector binds a query endpoint by default when it has one; give it a port of its own.
# Everything runs on loopback, so no CURVE: say so where the daemons ask for it.
collector_help=$("$COLLECTOR" --help 2>&1 || true)
agent_help=$("$AGENT" --help 2>&1 || true)
has_query_endpoint=0
[[ $collector_help == *--query* ]] && has_query_endpoint=1
# A collector that has `init` never creates its store: make it first, as an operator does.
has_init=0
[[ $collector_help == *" init "* ]] && has_init=1
collector_plain=()
[[ $collector_help == *--allow-plain* ]] && collector_plain=(--allow-plain)
agent_plain=()
[[ $agent_help == *--allow-plain* ]] && agent_plain=(--allow-plain)
cli_plain=()
[[ $("$CLI" --help 2>&1 || true) == *--allow-plain* ]] && cli_plain=(--allow-plain)

# start_collector NAME [OPTION...]: a collector (the program in $COLLECTOR_PROGRAM, by default
# the real one) on fresh state WORK/NAME; sets COLLECTOR_PID, INGEST_EP, QUERY_EP.
start_collector() {
  local name=$1 ingest_port query_port program=${COLLECTOR_PROGRAM:-$COLLECTOR}
  shift
  if ((has_init)); then
    "$program" init --state-dir "$work/$name" >/dev/null 2>>"$work/$name.log" ||
      fail "$program init --state-dir $work/$name failed (see $work/$name.log)"
  fi
  ingest_port=$(free_port)
  INGEST_EP=tcp://127.0.0.1:$ingest_port
  local args=(--state-dir "$work/$name" --ingest "$INGEST_EP" "${collector_plain[@]}")
  QUERY_EP=""
  if ((has_query_endpoint)); then
    query_port=$(free_port)
    while [[ $query_port == "$ingest_port" ]]; do query_port=$(free_port); done
    QUERY_EP=tcp://127.0.0.1:$query_port
    args+=(--query "$QUERY_EP")
  fi
  "$program" "${args[@]}" "$@" >>"$work/$name.log" 2>&1 &
  COLLECTOR_PID=$!
  started+=("$COLLECTOR_PID")
  wait_port "$ingest_port" 20
}

stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# proc_figures NAME PID: the CPU time and the bytes written of a running process so far, as
# NAME.cpu_ms, NAME.write_bytes (to the disks) and NAME.wchar (passed to write calls).
proc_figures() {
  gawk -v name="$1" -v tick="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); split($0, f, " ")
      printf "%s.cpu_ms=%d\n", name, (f[12] + f[13]) * 1000 / tick }' "/proc/$2/stat" >>"$results"
  gawk -v name="$1" '$1 == "write_bytes:" || $1 == "wchar:" { k = $1; sub(/:/, "", k); printf "%s.%s=%s\n", name, k, $2 }' \
    "/proc/$2/io" >>"$results"
}

# neighbourhood_totals DB: "code,pence,records" per neighbourhood, sorted, from the real CLI.
neighbourhood_totals() {
  "$CLI" --db "$1" --format csv neighbourhoods | gawk -F, 'NR > 1 {
      p = $3; neg = sub(/^-/, "", p); gsub(/[^0-9]/, "", p); p = p + 0; if (neg) p = -p
      printf "%s,%d,%d\n", $2, p, $4 }' | LC_ALL=C sort
}

machine() {
  local cpu mem disk
  cpu=$(gawk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
  mem=$(gawk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
  disk=$(df -T "$work" | gawk 'NR == 2 { print $2 " on " $1 }')
  echo "$(nproc) cores ($cpu), $mem RAM, $disk, Linux $(uname -r)"
}

echo "== totalplace benchmarks: $records records, seed $seed, work folder $work"
put run.records "$records"
put run.seed "$seed"
put run.date "$(date -u +%Y-%m-%dT%H:%MZ)"
put run.machine "$(machine)"
put run.commit "$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"
put run.window "${window:-agent default}"
push_window=${window:-16} # the agent's default window
agent_set=()
[[ -n $window ]] && agent_set=(--set "agent/window=$window")

# ---------------------------------------------------------------- 1. data
echo "== generating exports"
t0=$(now)
gen_csv=()
((scaling_only)) && gen_csv=(--no-csv)
"$GEN" --records "$records" --seed "$seed" "${gen_csv[@]}" --out "$work/data" >"$work/gen.log" 2>&1 || fail "tp_gen"
# The next month's exports, new keys: the ingest that runs while queries are timed.
extra=$((records / 10))
if ((!scaling_only)); then
  "$GEN" --records "$extra" --seed $((seed + 1)) --first-month 2024-04 --months 1 \
    --txn-base 1000000000 --agent-prefix extra-agent --no-csv --out "$work/extra" >>"$work/gen.log" 2>&1 ||
    fail "tp_gen (extra)"
fi
record gen "$work/data/manifest"
put gen.seconds "$(gawk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
frames=("$work"/data/frames/agent*.frames)
extra_frames=("$work"/extra/frames/agent*.frames)
if [[ -z $step ]]; then
  if ((scaling_only)); then step=$((records / 5)); else step=$((records >= 10000000 ? 1000000 : records / 10)); fi
fi
bytes_per() { gawk -v b="$1" -v n="$2" 'BEGIN { if (b == "" || n + 0 == 0) print "n/a"; else printf "%.0f", b / n }'; }

# ---------------------------------------------------------------- 2. ceilings
if ((!scaling_only)); then
echo "== ceiling: raw LMDB puts of the same keys"
"$LMDB_CEILING" --dir "$work/lmdb-ceiling" --txn-records 100000 "${frames[@]}" >"$work/lmdb.out" 2>"$work/lmdb.log" ||
  fail "tp_lmdb_ceiling"
record lmdb "$work/lmdb.out"
rm -rf "$work/lmdb-ceiling"

echo "== ceiling: raw ZeroMQ with the same frames"
"$PUSH" "tcp://127.0.0.1:$(free_port)" --sink --window "$push_window" --step 0 "${frames[@]}" \
  >"$work/zmq.out" 2>"$work/zmq.log" || fail "tp_push --sink"
record zmq "$work/zmq.out"
"$PUSH" "tcp://127.0.0.1:$(free_port)" --sink --window 0 --step 0 "${frames[@]}" \
  >"$work/zmq-oneway.out" 2>>"$work/zmq.log" || fail "tp_push --sink --window 0"
record zmq_oneway "$work/zmq-oneway.out"
fi

# ---------------------------------------------------------------- 3. collector alone
echo "== collector alone: pre-encoded batches over tcp loopback"
start_collector alone
"$MEMWATCH" collector="$COLLECTOR_PID" >"$work/alone-mem.out" &
memwatch_pid=$!
"$PUSH" "$INGEST_EP" --window "$push_window" --step "$step" --timeout 600000 "${frames[@]}" \
  >"$work/alone.out" 2>"$work/alone-push.log" || fail "tp_push to the collector"
proc_figures alone_proc "$COLLECTOR_PID" # before queries and verify add their own work
record alone "$work/alone.out"
neighbourhood_totals "$work/alone" >"$work/alone.totals"

if ((scaling_only)); then
  stop_pid "$COLLECTOR_PID"
  wait "$memwatch_pid" || true
  record alone_mem "$work/alone-mem.out"
  put alone.store_bytes "$(du -sb "$work/alone" | cut -f1)"
  stored=$(get alone.accepted)
  {
    echo "Run of $(get run.date) on $(get run.machine); commit $(get run.commit); $records records, seed $seed; the collector alone only (--scaling-only)."
    echo
    echo "| measure | result | target | |"
    echo "| --- | --- | --- | --- |"
    echo "| collector alone (window $push_window per connection) | $(get alone.records_per_s) records/s ($(get alone.seconds) s) | | |"
    gawk -F= -v s="$step" '$1 ~ /^alone\.step[0-9]+_records_per_s$/ { n = substr($1, 11); sub(/_records_per_s/, "", n); r[n + 0] = $2; if (n + 0 > m) m = n + 0 }
      END { line = ""; for (i = 1; i <= m; i++) line = line (i > 1 ? ", " : "") r[i]; printf "| records/s of each %d records stored, in order | %s | | |\n", s, line }' "$results"
    echo "| scaling: last / first $((step / 1000))k records | $(get alone.last_step_records_per_s) / $(get alone.first_step_records_per_s) = $(get alone.last_over_first) | >= 0.70 | $(gawk -v v="$(get alone.last_over_first)" 'BEGIN { print (v + 0 >= 0.7 ? "met" : "MISSED") }') |"
    echo "| store on disk: bytes, per record stored | $(get alone.store_bytes) ($(bytes_per "$(get alone.store_bytes)" "$stored") B/record) | | |"
    echo "| collector: peak RssAnon; CPU per record; bytes written to disk (/proc/PID/io write_bytes) and passed to write calls (wchar) per record | $(gawk -v k="$(get alone_mem.collector.peak_anon_kb)" 'BEGIN { printf "%.0f MiB", k / 1024 }'); $(gawk -v c="$(get alone_proc.cpu_ms)" -v n="$records" 'BEGIN { printf "%.2f µs", c * 1000 / n }'); $(bytes_per "$(get alone_proc.write_bytes)" "$records") / $(bytes_per "$(get alone_proc.wchar)" "$records") B | | |"
  } >"$work/summary.md"
  echo
  cat "$work/summary.md"
  echo
  ((keep)) && echo "every figure: $results"
  exit 0
fi

# ---------------------------------------------------------------- 4. queries
echo "== query latency at $records records: read-only in process, whole command, endpoint"
"$LATENCY" --db "$work/alone" --count 20000 >"$work/q-store.out" 2>>"$work/query.log" ||
  fail "tp_latency (store)"
record query_store "$work/q-store.out"
# A place of 10 neighbourhoods (random ones, a new place each time) by body: one store_totals_of.
"$LATENCY" --db "$work/alone" --count 20000 --place-size 10 >"$work/q-place.out" \
  2>>"$work/query.log" || fail "tp_latency (a place of 10 neighbourhoods)"
record query_place "$work/q-place.out"
"$LATENCY" --db "$work/alone" --count 300 -- "$CLI" --db "$work/alone" totals --by body \
  --neighbourhood >"$work/q-cli.out" 2>>"$work/query.log" || fail "tp_latency (totalplace --db)"
record query_cli_db "$work/q-cli.out"
if [[ -n $QUERY_EP ]]; then
  "$LATENCY" --db "$work/alone" --count 20000 --endpoint "$QUERY_EP" >"$work/q-endpoint.out" \
    2>>"$work/query.log" || fail "tp_latency (endpoint)"
  record query_endpoint "$work/q-endpoint.out"
  "$LATENCY" --db "$work/alone" --count 300 -- "$CLI" --collector "$QUERY_EP" "${cli_plain[@]}" totals --by body \
    --neighbourhood >"$work/q-cli-endpoint.out" 2>>"$work/query.log" ||
    fail "tp_latency (totalplace --collector)"
  record query_cli_endpoint "$work/q-cli-endpoint.out"
fi

echo "== query latency while $extra more records are ingested"
"$PUSH" "$INGEST_EP" --window "$push_window" --step 0 --timeout 600000 "${extra_frames[@]}" \
  >"$work/extra.out" 2>"$work/extra-push.log" &
extra_pid=$!
started+=("$extra_pid")
"$LATENCY" --db "$work/alone" --count 1000000 --interval-us 1000 --while-pid "$extra_pid" \
  >"$work/q-store-busy.out" 2>>"$work/query.log" &
busy_store=$!
busy_endpoint=""
if [[ -n $QUERY_EP ]]; then
  "$LATENCY" --db "$work/alone" --count 1000000 --interval-us 1000 --while-pid "$extra_pid" \
    --seed 2 --endpoint "$QUERY_EP" >"$work/q-endpoint-busy.out" 2>>"$work/query.log" &
  busy_endpoint=$!
fi
wait "$extra_pid" || fail "tp_push of the extra records"
wait "$busy_store" || fail "tp_latency while ingesting"
record extra "$work/extra.out"
record query_store_busy "$work/q-store-busy.out"
if [[ -n $busy_endpoint ]]; then
  wait "$busy_endpoint" || fail "tp_latency (endpoint) while ingesting"
  record query_endpoint_busy "$work/q-endpoint-busy.out"
fi
# ---------------------------------------------------------------- verify and backup
stored=$(("$records" + extra))
echo "== verify and backup of the store ($stored records) beside the running collector"
# timed NAME COMMAND...: runs COMMAND with its memory watched; puts NAME.seconds and its peaks.
timed() {
  local name=$1 t0 t1 pid status=0
  shift
  t0=$(now)
  "$@" >"$work/$name.out" 2>"$work/$name.log" &
  pid=$!
  "$MEMWATCH" "$name=$pid" >"$work/$name-mem.out" &
  wait "$pid" || status=$?
  t1=$(now)
  wait $! || true
  ((status == 0)) || fail "$* exited $status (see $work/$name.log)"
  put "$name.seconds" "$(gawk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
  record "${name}_mem" "$work/$name-mem.out"
}
timed verify "$CLI" --db "$work/alone" --format csv verify
grep -q '^clean,0,' "$work/verify.out" || fail "the benchmark's store does not verify clean: $(cat "$work/verify.out")"
put verify.records_per_s "$(gawk -v n="$stored" -v s="$(get verify.seconds)" 'BEGIN { printf "%.0f", n / s }')"
timed backup "$CLI" --db "$work/alone" --format csv backup "$work/backup"
# The backup's own split: the copy, then the verify of the copy.
gawk -F, '$1 == "backup" { h = NR } h && NR == h + 1 {
    printf "backup.bytes=%s\nbackup.copy_ms=%s\nbackup.verify_ms=%s\n", $3, $5, $6 }' "$work/backup.out" | tr -d '\r' >>"$results"
put alone.data_bytes "$(stat -c %s "$work/alone/data.mdb")"
rm -rf "$work/backup"

stop_pid "$COLLECTOR_PID"
wait "$memwatch_pid" || true
record alone_mem "$work/alone-mem.out"
put alone.store_bytes "$(du -sb "$work/alone" | cut -f1)"
rm -rf "$work/alone"

# What the checksums cost: the collector alone, the same frames, with and without them, in turns
# (with, without, with, without) so that a machine busy with something else for a while, or a
# page cache warming up, weighs on both sides alike.
echo "== collector alone with and without checksums, in turns (what the checksums cost)"
for round in 1 2; do
  for side in checksums nochecksums; do
    if [[ $side == checksums ]]; then program=$COLLECTOR; else program=$NOCHECKSUMS; fi
    COLLECTOR_PROGRAM=$program start_collector "$side$round"
    "$PUSH" "$INGEST_EP" --window "$push_window" --step 0 --timeout 600000 "${frames[@]}" \
      >"$work/$side$round.out" 2>"$work/$side$round-push.log" || fail "tp_push to $program ($side, round $round)"
    stop_pid "$COLLECTOR_PID"
    record "$side$round" "$work/$side$round.out"
    put "$side$round.store_bytes" "$(du -sb "$work/$side$round" | cut -f1)"
    rm -rf "${work:?}/$side$round"
  done
done
for side in checksums nochecksums; do
  put "$side.records_per_s" "$(gawk -v n="$records" -v a="$(get "${side}1.seconds")" -v b="$(get "${side}2.seconds")" 'BEGIN { printf "%.0f", 2 * n / (a + b) }')"
done

# The store's journal (groups acknowledged from it, one LMDB commit for many) against a commit per
# group of 32,000 records, the way before it: the same frames.
echo "== collector alone without the journal (a commit per group of 32,000 records)"
start_collector nojournal -o collector/journal_records=0 -o collector/max_group_records=32000
"$MEMWATCH" collector="$COLLECTOR_PID" >"$work/nojournal-mem.out" &
memwatch_pid=$!
"$PUSH" "$INGEST_EP" --window "$push_window" --step "$step" --timeout 600000 "${frames[@]}" \
  >"$work/nojournal.out" 2>"$work/nojournal-push.log" || fail "tp_push to the collector (no journal)"
stop_pid "$COLLECTOR_PID"
wait "$memwatch_pid" || true
record nojournal "$work/nojournal.out"
record nojournal_mem "$work/nojournal-mem.out"
put nojournal.store_bytes "$(du -sb "$work/nojournal" | cut -f1)"
rm -rf "$work/nojournal"

# ---------------------------------------------------------------- 5. end to end
echo "== end to end: 4 agents -> collector, tcp loopback, durable acks"
start_collector e2e
agents=$(ls -d "$work"/data/csv/agent* | wc -l)
for ((a = 0; a < agents; a++)); do
  mkdir -p "$work/agent$a/inbox" "$work/agent$a/staging"
  cp "$work"/data/csv/agent$a/*.csv "$work/agent$a/staging/"
done
sync
t0=$(now)
for ((a = 0; a < agents; a++)); do # the finance systems drop every export at once
  for file in "$work/agent$a"/staging/*.csv; do mv "$file" "$work/agent$a/inbox/"; done
done
agent_pids=()
for ((a = 0; a < agents; a++)); do
  "$AGENT" --id "bench-agent$a" --body GB-BENCH --inbox "$work/agent$a/inbox" \
    --state-dir "$work/agent$a/state" --collector "$INGEST_EP" "${agent_plain[@]}" "${agent_set[@]}" --once \
    >>"$work/agent$a.log" 2>&1 &
  agent_pids+=($!)
  started+=($!)
done
watch_args=(collector="$COLLECTOR_PID")
for ((a = 0; a < agents; a++)); do watch_args+=("agent$a=${agent_pids[$a]}"); done
"$MEMWATCH" "${watch_args[@]}" >"$work/e2e-mem.out" &
memwatch_pid=$!
for pid in "${agent_pids[@]}"; do wait "$pid" || fail "an agent failed (see agent*.log)"; done
t1=$(now)
stop_pid "$COLLECTOR_PID"
wait "$memwatch_pid" || true
record e2e_mem "$work/e2e-mem.out"
seconds=$(gawk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
put e2e.seconds "$seconds"
put e2e.records_per_s "$(gawk -v n="$records" -v s="$seconds" 'BEGIN { printf "%.0f", n / s }')"
# The counters' row follows their header (a store's identity may come first).
"$CLI" --db "$work/e2e" --format csv stats | gawk -F, '$1 == "batches" { header = NR } header && NR == header + 1 {
    printf "e2e.accepted=%s\ne2e.duplicate=%s\ne2e.superseded=%s\ne2e.stale=%s\ne2e.rejected=%s\n", $2, $3, $4, $5, $6 }' >>"$results"
seen=$(($(get e2e.accepted) + $(get e2e.duplicate) + $(get e2e.superseded) + $(get e2e.stale) + $(get e2e.rejected)))
((seen == records)) || fail "the collector saw $seen of $records records end to end"
(($(get e2e.rejected) == 0)) || fail "the collector rejected records end to end"
neighbourhood_totals "$work/e2e" >"$work/e2e.totals"
cmp -s "$work/alone.totals" "$work/e2e.totals" ||
  fail "end-to-end totals differ from the collector-alone totals of the same records"
put check.e2e_equals_alone yes
put e2e.store_bytes "$(du -sb "$work/e2e" | cut -f1)"
# Bytes by database: pages (branch, leaf, overflow) of 4 KiB per record stored.
if command -v mdb_stat >/dev/null; then
  mdb_stat -a "$work/e2e" | gawk -v n="$(get e2e.accepted)" '
    /^Status of / { db = $3 } /pages:/ { pages[db] += $NF } /Entries:/ { entries[db] = $2 }
    END { for (d in pages) if (d != "Main") printf "e2e_db.%s.entries=%d\ne2e_db.%s.bytes_per_record=%.1f\n", d, entries[d], d, pages[d] * 4096 / n }' >>"$results"
fi
rm -rf "$work/e2e" "$work"/agent*/state

# ---------------------------------------------------------------- 5b. one large file
# The agent streams a file into its outbox: its memory must not grow with the file. One export of
# 2,000,000 rows (20,000 for --smoke) taken by one agent into its outbox and delivered, its peak
# RssAnon watched (target: under 64 MiB whatever the file's size).
big_rows=$((smoke ? 20000 : 2000000))
echo "== one agent, one file of $big_rows rows: the agent's memory"
"$GEN" --records "$big_rows" --seed "$seed" --agents 1 --months 1 --no-frames --out "$work/bigdata" \
  >>"$work/gen.log" 2>&1 || fail "tp_gen (one large file)"
start_collector big
mkdir -p "$work/bigagent/inbox"
mv "$work"/bigdata/csv/agent0/*.csv "$work/bigagent/inbox/big.csv"
t0=$(now)
"$AGENT" --id bench-big --body GB-BENCH --inbox "$work/bigagent/inbox" --state-dir "$work/bigagent/state" \
  --collector "$INGEST_EP" "${agent_plain[@]}" "${agent_set[@]}" --once >>"$work/bigagent.log" 2>&1 &
big_pid=$!
started+=($big_pid)
"$MEMWATCH" --interval-ms 20 agent="$big_pid" >"$work/big-mem.out" &
memwatch_pid=$!
wait "$big_pid" || fail "the agent failed on one large file (see bigagent.log)"
put big.seconds "$(gawk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
stop_pid "$COLLECTOR_PID"
wait "$memwatch_pid" || true
record big_mem "$work/big-mem.out"
put big.rows "$big_rows"
grep -q "big.csv: delivered:" "$work/bigagent.log" || fail "the large file was not delivered (see bigagent.log)"
rm -rf "$work/big" "$work/bigdata" "$work/bigagent"

# ---------------------------------------------------------------- 6. PostgreSQL
run_postgres() {
  local pgbin
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -z $pgbin ]]; then
    if (($(id -u) == 0)); then
      echo "   installing postgresql (Debian package)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
      pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    else
      echo "   PostgreSQL is not installed and this is not root: skipped"
      return 0
    fi
  fi
  local as_pg=()
  if (($(id -u) == 0)); then
    id postgres >/dev/null 2>&1 || fail "no postgres user to run the server as"
    as_pg=(runuser -u postgres --)
  fi
  local pg=$work/pg port
  port=$(free_port)
  mkdir -p "$pg"
  ((${#as_pg[@]})) && chown postgres "$pg"
  "${as_pg[@]}" "$pgbin/initdb" -D "$pg/data" -U postgres --auth=trust -E UTF8 --locale=C \
    >"$work/pg-init.log" 2>&1 || fail "initdb (see pg-init.log)"
  # Durable like the collector's acks (fsync, synchronous_commit on, full page writes: the
  # defaults), with the memory and WAL room a team would give a bulk load on this machine.
  local options="-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pg"
  options+=" -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
  options+=" -c shared_buffers=2GB -c work_mem=256MB -c maintenance_work_mem=1GB"
  options+=" -c max_wal_size=16GB -c checkpoint_timeout=30min"
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w -t 60 -o "$options" start \
    >"$work/pg-start.log" 2>&1 || fail "pg_ctl start (see $pg/server.log)"
  pg_ctl_stop="${as_pg[*]} $pgbin/pg_ctl -D $pg/data -m fast stop"
  local psql=("$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
  put pg.version "$("${psql[@]}" -Atc 'SHOW server_version')"
  "${psql[@]}" >"$work/pg-schema.log" 2>&1 <<'SQL' || fail "PostgreSQL schema"
CREATE TABLE spending (
  body text NOT NULL, record text NOT NULL, revision integer NOT NULL, period text NOT NULL,
  neighbourhood text NOT NULL, service text NOT NULL, amount_pence bigint NOT NULL,
  poolable boolean NOT NULL, supplier text, description text, withdrawn boolean NOT NULL,
  PRIMARY KEY (body, record));
SQL
  # One loader per agent, files in the same order, each file one transaction: COPY into a
  # staging table, keep the highest revision of each key in the file, upsert where newer.
  for ((a = 0; a < agents; a++)); do
    {
      for file in "$work"/data/csv/agent$a/*.csv; do
        cat <<SQL
BEGIN;
CREATE TEMP TABLE staging (body text, record text, revision integer, spent date,
  amount numeric(20,2), neighbourhood text, service text, supplier text, description text,
  poolable boolean, withdrawn boolean) ON COMMIT DROP;
\\copy staging FROM '$file' WITH (FORMAT csv, HEADER true)
INSERT INTO spending AS s
SELECT DISTINCT ON (body, record) body, record, revision, to_char(spent, 'YYYY-MM'),
  neighbourhood, service, (amount * 100)::bigint, poolable, supplier, description, withdrawn
FROM staging ORDER BY body, record, revision DESC
ON CONFLICT (body, record) DO UPDATE SET revision = excluded.revision,
  period = excluded.period, neighbourhood = excluded.neighbourhood, service = excluded.service,
  amount_pence = excluded.amount_pence, poolable = excluded.poolable,
  supplier = excluded.supplier, description = excluded.description,
  withdrawn = excluded.withdrawn
WHERE excluded.revision > s.revision;
COMMIT;
SQL
      done
    } >"$work/pg-load$a.sql"
  done
  echo "   loading the same CSV files into PostgreSQL $(get pg.version)"
  local t0 t1 t2 pids=()
  t0=$(now)
  for ((a = 0; a < agents; a++)); do
    "${psql[@]}" -f "$work/pg-load$a.sql" >"$work/pg-load$a.log" 2>&1 &
    pids+=($!)
    started+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || fail "a PostgreSQL loader failed (see pg-load*.log)"; done
  t1=$(now)
  # The same totals the collector keeps: per cell and per neighbourhood.
  "${psql[@]}" >"$work/pg-totals.log" 2>&1 <<'SQL' || fail "PostgreSQL totals"
BEGIN;
CREATE TABLE cells AS
  SELECT neighbourhood, body, service, period, poolable, sum(amount_pence) AS amount_pence,
         count(*) AS records
  FROM spending WHERE NOT withdrawn GROUP BY 1, 2, 3, 4, 5;
CREATE INDEX ON cells (neighbourhood);
CREATE TABLE neighbourhood_totals AS
  SELECT neighbourhood, sum(amount_pence) AS amount_pence, sum(records) AS records
  FROM cells GROUP BY 1;
COMMIT;
SQL
  t2=$(now)
  put pg.load_seconds "$(gawk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
  put pg.totals_seconds "$(gawk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')"
  put pg.seconds "$(gawk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')"
  put pg.records_per_s "$(gawk -v n="$records" -v a="$t0" -v b="$t2" 'BEGIN { printf "%.0f", n / (b - a) }')"
  "${psql[@]}" -Atc "COPY (SELECT neighbourhood, amount_pence, records FROM neighbourhood_totals
      WHERE records > 0) TO STDOUT WITH (FORMAT csv)" | LC_ALL=C sort >"$work/pg.totals"
  cmp -s "$work/alone.totals" "$work/pg.totals" ||
    fail "PostgreSQL's totals differ from the collector's for the same files"
  put check.pg_equals_collector yes
  put pg.database_bytes "$("${psql[@]}" -Atc 'SELECT pg_database_size(current_database())')"
  # The same question as the CLI's, for scale: totals of one neighbourhood by body.
  "${psql[@]}" -Atc "SELECT neighbourhood FROM neighbourhood_totals" >"$work/pg-codes"
  cat >"$work/pg-query.sql" <<'SQL'
\set n random(1, :codes)
SELECT body, sum(amount_pence), sum(records) FROM cells
 WHERE neighbourhood = (SELECT code FROM codes WHERE id = :n) GROUP BY body ORDER BY body;
SQL
  "${psql[@]}" >>"$work/pg-totals.log" 2>&1 <<SQL
CREATE TABLE codes (id serial PRIMARY KEY, code text);
\\copy codes (code) FROM '$work/pg-codes'
SQL
  local count
  count=$(wc -l <"$work/pg-codes")
  (cd "$pg" && "${as_pg[@]}" "$pgbin/pgbench" -n -h 127.0.0.1 -p "$port" -U postgres -D "codes=$count" \
    -f "$work/pg-query.sql" -t 5000 -l --log-prefix="$pg/pgbench" postgres >"$work/pg-query.log" 2>&1) ||
    fail "pgbench (see pg-query.log)"
  cat "$pg"/pgbench.* | gawk '{ print $3 }' | sort -n | gawk '{ v[NR] = $1 } END {
      printf "pg_query.p50_us=%.1f\npg_query.p99_us=%.1f\npg_query.max_us=%.1f\n", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1], v[NR] }' >>"$results"
  eval "$pg_ctl_stop" >/dev/null 2>&1 || true
  pg_ctl_stop=""
  rm -rf "$pg"
}
if ((postgres)); then
  echo "== PostgreSQL baseline: COPY + upsert + GROUP BY on the same files"
  run_postgres
fi

# ---------------------------------------------------------------- 7. SQLite
# What a C team would embed instead of LMDB: Debian's sqlite3, a file in WAL mode with
# synchronous=FULL, so that a committed transaction survives power loss as an Ack does (NORMAL
# would sync only at checkpoints). Four loaders, one per agent, the same files in the same order,
# each file one transaction (BEGIN IMMEDIATE: SQLite has one writer; the others wait their turn):
# .import into a staging table, then one upsert by key that keeps the highest revision (SQLite
# applies the rows of one INSERT in order, so repeats in a file need no DISTINCT ON), then the
# same GROUP BY totals as PostgreSQL's. The time runs from the first import to the end of the
# totals, whose per-neighbourhood figures must equal the collector's.
run_sqlite() {
  if ! command -v sqlite3 >/dev/null; then
    if (($(id -u) == 0)); then
      echo "   installing sqlite3 (Debian package)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null
    else
      echo "   sqlite3 is not installed and this is not root: skipped"
      return 0
    fi
  fi
  local db=$work/sqlite/spending.db
  mkdir -p "$work/sqlite"
  put sqlite.version "$(sqlite3 --version | cut -d' ' -f1)"
  local settings="PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=600000;
PRAGMA cache_size=-524288; PRAGMA temp_store=MEMORY;"
  sqlite3 "$db" >"$work/sqlite-schema.log" 2>&1 <<SQL || fail "SQLite schema"
$settings
CREATE TABLE spending (
  body TEXT NOT NULL, record TEXT NOT NULL, revision INTEGER NOT NULL, period TEXT NOT NULL,
  neighbourhood TEXT NOT NULL, service TEXT NOT NULL, amount_pence INTEGER NOT NULL,
  poolable INTEGER NOT NULL, supplier TEXT, description TEXT, withdrawn INTEGER NOT NULL,
  PRIMARY KEY (body, record)) WITHOUT ROWID;
SQL
  for ((a = 0; a < agents; a++)); do
    {
      echo "$settings"
      for file in "$work"/data/csv/agent$a/*.csv; do
        cat <<SQL
BEGIN IMMEDIATE;
CREATE TEMP TABLE staging (body, record, revision, spent, amount, neighbourhood, service,
  supplier, description, poolable, withdrawn);
.import --csv --skip 1 $file staging
INSERT INTO spending (body, record, revision, period, neighbourhood, service, amount_pence,
  poolable, supplier, description, withdrawn)
SELECT body, record, CAST(revision AS INTEGER), substr(spent, 1, 7), neighbourhood, service,
  CAST(replace(amount, '.', '') AS INTEGER), lower(poolable) IN ('yes', 'y', 'true', '1'),
  supplier, description, lower(withdrawn) IN ('yes', 'y', 'true', '1')
FROM staging WHERE true
ON CONFLICT (body, record) DO UPDATE SET revision = excluded.revision, period = excluded.period,
  neighbourhood = excluded.neighbourhood, service = excluded.service,
  amount_pence = excluded.amount_pence, poolable = excluded.poolable,
  supplier = excluded.supplier, description = excluded.description, withdrawn = excluded.withdrawn
WHERE excluded.revision > spending.revision;
DROP TABLE staging;
COMMIT;
SQL
      done
    } >"$work/sqlite-load$a.sql"
  done
  echo "   loading the same CSV files into SQLite $(get sqlite.version)"
  local t0 t1 t2 pids=()
  t0=$(now)
  for ((a = 0; a < agents; a++)); do
    sqlite3 -bail "$db" <"$work/sqlite-load$a.sql" >"$work/sqlite-load$a.log" 2>&1 &
    pids+=($!)
    started+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || fail "a SQLite loader failed (see sqlite-load*.log)"; done
  t1=$(now)
  sqlite3 -bail "$db" >"$work/sqlite-totals.log" 2>&1 <<SQL || fail "SQLite totals"
$settings
BEGIN IMMEDIATE;
CREATE TABLE cells AS
  SELECT neighbourhood, body, service, period, poolable, sum(amount_pence) AS amount_pence,
         count(*) AS records
  FROM spending WHERE NOT withdrawn GROUP BY 1, 2, 3, 4, 5;
CREATE INDEX cells_neighbourhood ON cells (neighbourhood);
CREATE TABLE neighbourhood_totals AS
  SELECT neighbourhood, sum(amount_pence) AS amount_pence, sum(records) AS records
  FROM cells GROUP BY 1;
COMMIT;
SQL
  t2=$(now)
  put sqlite.load_seconds "$(gawk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
  put sqlite.totals_seconds "$(gawk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')"
  put sqlite.seconds "$(gawk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')"
  put sqlite.records_per_s "$(gawk -v n="$records" -v a="$t0" -v b="$t2" 'BEGIN { printf "%.0f", n / (b - a) }')"
  sqlite3 -csv "$db" "SELECT neighbourhood, amount_pence, records FROM neighbourhood_totals WHERE records > 0" |
    tr -d '\r' | LC_ALL=C sort >"$work/sqlite.totals"
  cmp -s "$work/alone.totals" "$work/sqlite.totals" ||
    fail "SQLite's totals differ from the collector's for the same files"
  put check.sqlite_equals_collector yes
  sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
  put sqlite.database_bytes "$(du -sb "$work/sqlite" | cut -f1)"
  rm -rf "$work/sqlite"
}
if ((sqlite)); then
  echo "== SQLite peer: .import + upsert + GROUP BY on the same files"
  run_sqlite
fi

# ---------------------------------------------------------------- summary
kib_to_mib() { gawk -v k="$1" 'BEGIN { if (k == "") print "n/a"; else printf "%.0f", k / 1024 }'; }
agent_peak() { # agent_peak FIELD: the largest of the four agents' FIELD
  gawk -F= -v f="$1" '$1 ~ "^e2e_mem\\.agent[0-9]+\\." f "$" && $2 > m { m = $2 } END { print m + 0 }' "$results"
}
alone_rps=$(get alone.records_per_s)
e2e_rps=$(get e2e.records_per_s)
pg_rps=$(get pg.records_per_s)
lmdb_rps=$(get lmdb.records_per_s)
zmq_rps=$(get zmq.records_per_s)
put ratio.e2e_over_pg "$(ratio "$e2e_rps" "$pg_rps")"
sqlite_rps=$(get sqlite.records_per_s)
put ratio.e2e_over_sqlite "$(ratio "$e2e_rps" "$sqlite_rps")"
put e2e.bytes_per_record "$(bytes_per "$(get e2e.store_bytes)" "$(get e2e.accepted)")"
put ratio.alone_over_lmdb "$(ratio "$alone_rps" "$lmdb_rps")"
put ratio.alone_over_zmq "$(ratio "$alone_rps" "$zmq_rps")"
put ratio.last_over_first "$(get alone.last_over_first)"
put ratio.checksums_over_none "$(ratio "$(get checksums.records_per_s)" "$(get nochecksums.records_per_s)")"
verdict() { gawk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "" || v == "n/a") print "n/a";
  else if ((op == ">=" && v + 0 >= t + 0) || (op == "<" && v + 0 < t + 0)) print "met"; else print "MISSED" }'; }
{
  echo "Run of $(get run.date) on $(get run.machine); commit $(get run.commit); $records records, seed $seed."
  echo
  echo "| measure | result | target | |"
  echo "| --- | --- | --- | --- |"
  echo "| end to end, 4 agents, durable acks | $e2e_rps records/s ($(get e2e.seconds) s) | | |"
  echo "| PostgreSQL $(get pg.version), COPY + upsert + GROUP BY | ${pg_rps:-n/a} records/s ($(get pg.seconds) s, of which totals $(get pg.totals_seconds) s) | | |"
  echo "| end to end / PostgreSQL | $(get ratio.e2e_over_pg)x | >= 3x | $(verdict "$(get ratio.e2e_over_pg)" ">=" 3) |"
  echo "| SQLite $(get sqlite.version) (WAL, synchronous=FULL), .import + upsert + GROUP BY | ${sqlite_rps:-n/a} records/s ($(get sqlite.seconds) s, of which totals $(get sqlite.totals_seconds) s) | | |"
  echo "| end to end / SQLite | $(get ratio.e2e_over_sqlite)x | | |"
  echo "| collector alone (window $push_window per connection) | $alone_rps records/s | | |"
  echo "| raw LMDB puts, same keys, 100k per transaction | $lmdb_rps records/s | | |"
  echo "| collector alone / raw LMDB | $(get ratio.alone_over_lmdb) | >= 0.50 | $(verdict "$(get ratio.alone_over_lmdb)" ">=" 0.5) |"
  echo "| raw ZeroMQ, same frames: window $push_window / one way | $zmq_rps / $(get zmq_oneway.records_per_s) records/s | | |"
  echo "| collector alone / raw ZeroMQ | $(get ratio.alone_over_zmq) | | |"
  echo "| scaling: last / first $((step / 1000))k records (collector alone) | $(get alone.last_step_records_per_s) / $(get alone.first_step_records_per_s) = $(get alone.last_over_first) | >= 0.80 | $(verdict "$(get alone.last_over_first)" ">=" 0.8) |"
  echo "| query p50 / p99 / max, read-only store_totals by body | $(get query_store.p50_us) / $(get query_store.p99_us) / $(get query_store.max_us) µs | p99 < 1000 µs | $(verdict "$(get query_store.p99_us)" "<" 1000) |"
  echo "| same, while ingest runs | $(get query_store_busy.p50_us) / $(get query_store_busy.p99_us) / $(get query_store_busy.max_us) µs | | |"
  echo "| query p50 / p99 / max, read-only: a place of 10 neighbourhoods by body | $(get query_place.p50_us) / $(get query_place.p99_us) / $(get query_place.max_us) µs | p99 < 1000 µs at 10M | $(verdict "$(get query_place.p99_us)" "<" 1000) |"
  echo "| query through the endpoint (in-process client) | $(get query_endpoint.p50_us) / $(get query_endpoint.p99_us) / $(get query_endpoint.max_us) µs | p99 < 2000 µs | $(verdict "$(get query_endpoint.p99_us)" "<" 2000) |"
  echo "| same, while ingest runs | $(get query_endpoint_busy.p50_us) / $(get query_endpoint_busy.p99_us) / $(get query_endpoint_busy.max_us) µs | | |"
  echo "| whole command \`totalplace --db\` | $(get query_cli_db.p50_us) / $(get query_cli_db.p99_us) / $(get query_cli_db.max_us) µs | | |"
  echo "| whole command \`totalplace --collector\` | $(get query_cli_endpoint.p50_us) / $(get query_cli_endpoint.p99_us) / $(get query_cli_endpoint.max_us) µs | | |"
  echo "| PostgreSQL, same question (pgbench) | $(get pg_query.p50_us) / $(get pg_query.p99_us) / $(get pg_query.max_us) µs | | |"
  echo "| collector peak RSS without the mapped file (RssAnon), collector alone / end to end | $(kib_to_mib "$(get alone_mem.collector.peak_anon_kb)") / $(kib_to_mib "$(get e2e_mem.collector.peak_anon_kb)") MiB | < 100 MiB | $(verdict "$(kib_to_mib "$(gawk -v a="$(get alone_mem.collector.peak_anon_kb)" -v b="$(get e2e_mem.collector.peak_anon_kb)" 'BEGIN { print (a > b ? a : b) }')")" "<" 100) |"
  echo "| collector alone without the journal (a commit per group of 32,000 records, as before): records/s; last / first; RssAnon; written per record | $(get nojournal.records_per_s); $(get nojournal.last_over_first); $(kib_to_mib "$(get nojournal_mem.collector.peak_anon_kb)") MiB; $(bytes_per "$(get nojournal_mem.collector.write_bytes)" "$records") B | | |"
  echo "| collector, per record: CPU; bytes written to disk (write_bytes) / passed to write calls (wchar); alone, end to end | $(gawk -v c="$(get alone_proc.cpu_ms)" -v n="$records" 'BEGIN { printf "%.2f µs", c * 1000 / n }'), $(gawk -v c="$(get e2e_mem.collector.cpu_ms)" -v n="$records" 'BEGIN { printf "%.2f µs", c * 1000 / n }'); $(bytes_per "$(get alone_proc.write_bytes)" "$records") / $(bytes_per "$(get alone_proc.wchar)" "$records") B, $(bytes_per "$(get e2e_mem.collector.write_bytes)" "$records") / $(bytes_per "$(get e2e_mem.collector.wchar)" "$records") B | | |"
  echo "| agents, per record, all four together: CPU; written to disk / passed to write calls | $(gawk -F= -v n="$records" '$1 ~ /^e2e_mem\.agent[0-9]+\.cpu_ms$/ { c += $2 } END { printf "%.2f µs", c * 1000 / n }' "$results"); $(gawk -F= -v n="$records" '$1 ~ /^e2e_mem\.agent[0-9]+\.write_bytes$/ { w += $2 } $1 ~ /^e2e_mem\.agent[0-9]+\.wchar$/ { c += $2 } END { printf "%.0f / %.0f B", w / n, c / n }' "$results") | | |"
  echo "| collector peak RSS with the mapped file (VmHWM), end to end | $(kib_to_mib "$(get e2e_mem.collector.hwm_kb)") MiB | | |"
  echo "| agents' peak RSS, largest of four: RssAnon / VmHWM | $(kib_to_mib "$(agent_peak peak_anon_kb)") / $(kib_to_mib "$(agent_peak hwm_kb)") MiB | | |"
  echo "| one agent, one file of $(get big.rows) rows taken and delivered ($(get big.seconds) s): peak RssAnon / VmHWM | $(kib_to_mib "$(get big_mem.agent.peak_anon_kb)") / $(kib_to_mib "$(get big_mem.agent.hwm_kb)") MiB | RssAnon < 64 MiB | $(verdict "$(kib_to_mib "$(get big_mem.agent.peak_anon_kb)")" "<" 64) |"
  echo "| store size on disk at $records records ($(get e2e.accepted) stored), bytes per record stored | $(gawk -v b="$(get e2e.store_bytes)" 'BEGIN { printf "%.0f MiB", b / 1048576 }'), $(get e2e.bytes_per_record) B | <= 150 B | $(verdict "$(get e2e.bytes_per_record)" "<" 150.5) |"
  echo "| the same by database (its pages per record stored): records, cells, neighbourhoods, texts, text_ids | $(get e2e_db.records.bytes_per_record), $(get e2e_db.cells.bytes_per_record), $(get e2e_db.neighbourhoods.bytes_per_record), $(get e2e_db.texts.bytes_per_record), $(get e2e_db.text_ids.bytes_per_record) B | | |"
  echo "| peers' databases with their totals, bytes per record stored: PostgreSQL, SQLite | $(bytes_per "$(get pg.database_bytes)" "$(get e2e.accepted)"), $(bytes_per "$(get sqlite.database_bytes)" "$(get e2e.accepted)") B | | |"
  echo "| checksums: collector alone with / without them, same frames, two turns each ($(get checksums1.records_per_s), $(get checksums2.records_per_s) / $(get nochecksums1.records_per_s), $(get nochecksums2.records_per_s)) | $(get checksums.records_per_s) / $(get nochecksums.records_per_s) records/s = $(get ratio.checksums_over_none); store $(gawk -v a="$(get checksums1.store_bytes)" -v b="$(get nochecksums1.store_bytes)" 'BEGIN { printf "%.0f / %.0f MiB", a / 1048576, b / 1048576 }') | >= 0.90 | $(verdict "$(get ratio.checksums_over_none)" ">=" 0.9) |"
  echo "| \`totalplace verify\` of $stored records beside the collector: time, peak RSS (RssAnon) | $(get verify.seconds) s ($(get verify.records_per_s) records/s), $(kib_to_mib "$(get verify_mem.verify.peak_anon_kb)") MiB | < 300 s at 10M | $(verdict "$(gawk -v s="$(get verify.seconds)" -v n="$stored" 'BEGIN { printf "%.1f", s * 10000000 / n }')" "<" 300) |"
  echo "| \`totalplace backup\` of the same: copy + verify of the copy = whole | $(gawk -v c="$(get backup.copy_ms)" -v v="$(get backup.verify_ms)" 'BEGIN { printf "%.1f + %.1f", c / 1000, v / 1000 }') = $(get backup.seconds) s; $(gawk -v b="$(get backup.bytes)" -v s="$(get alone.data_bytes)" 'BEGIN { printf "%.0f of %.0f MiB", b / 1048576, s / 1048576 }') (compacted) | | |"
} >"$work/summary.md"
echo
cat "$work/summary.md"
echo
((keep)) && echo "every figure: $results"
if ((smoke)); then
  # The smoke test's own checks: each tool produced its figures and the totals agreed.
  for key in lmdb.records_per_s zmq.records_per_s alone.records_per_s e2e.records_per_s \
    query_store.p99_us query_place.p99_us query_cli_db.p99_us alone_mem.collector.peak_anon_kb check.e2e_equals_alone \
    nochecksums.records_per_s verify.seconds backup.seconds backup.copy_ms big_mem.agent.peak_anon_kb nojournal.records_per_s \
    alone_mem.collector.cpu_ms e2e_mem.collector.write_bytes e2e.bytes_per_record; do
    [[ -n $(get "$key") ]] || fail "no $key in the results"
  done
  echo "bench smoke test: every tool ran and the totals agree"
fi
