# Shared by the integration tests: start real daemons on ipc:// sockets in a temporary folder,
# wait for conditions with deadlines, and compare the collector's totals with an independent
# reference computed from the CSV files. Source it; it sets -euo pipefail and a cleanup trap.
#
# Security: the daemons and the CLI run plain (no CURVE: --allow-plain, allowed because every
# endpoint is ipc://) unless a test says otherwise; make_keys and the COLLECTOR_SECURITY array
# set them up with CURVE (test_security.sh).
# TOTALPLACE_VALGRIND=1 runs the collector and the agents under valgrind: a definite leak or a
# memory error makes the daemon exit 99 (its report is in $WORK/valgrind.PID.log), and every
# deadline is multiplied by TIME_SCALE (default 10) for valgrind's slowness.
set -euo pipefail

BIN=${TOTALPLACE_BIN:?TOTALPLACE_BIN must name the build folder}
SRC=${TOTALPLACE_SOURCE:?TOTALPLACE_SOURCE must name the source folder}
COLLECTOR=$BIN/collector/totalplace-collector
AGENT=$BIN/agents/totalplace-agent
CLI_BIN=$BIN/collector/totalplace
for tool in "$COLLECTOR" "$AGENT" "$CLI_BIN"; do
  [[ -x $tool ]] || { echo "FAIL: $tool is not built" >&2; exit 1; }
done
command -v gawk >/dev/null || { echo "FAIL: gawk is needed (deploy/install-deps.sh installs it)" >&2; exit 1; }

# Short folder names: an ipc:// path must fit in a Unix socket address (107 bytes).
WORK=$(mktemp -d /tmp/tp-it.XXXXXX)
declare -A PIDS=()

# The daemons' command prefix: nothing, or valgrind.
RUN=()
TIME_SCALE=1
if [[ ${TOTALPLACE_VALGRIND:-0} == 1 ]]; then
  command -v valgrind >/dev/null || { echo "FAIL: valgrind is needed (deploy/install-deps.sh installs it)" >&2; exit 1; }
  RUN=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
       --log-file="$WORK/valgrind.%p.log")
  TIME_SCALE=${TIME_SCALE_VALGRIND:-10}
fi

# CLI: the totalplace command, plain (--allow-plain) whenever it asks a collector (--collector);
# CLI_BIN is the real binary, for tests that give it keys.
mkdir -p "$WORK/bin"
cat >"$WORK/bin/totalplace" <<WRAPPER
#!/usr/bin/env bash
for word in "\$@"; do
  [[ \$word == --collector* ]] && exec "$CLI_BIN" --allow-plain "\$@"
done
exec "$CLI_BIN" "\$@"
WRAPPER
chmod +x "$WORK/bin/totalplace"
CLI=$WORK/bin/totalplace

cleanup() {
  local status=$?
  for name in "${!PIDS[@]}"; do kill -9 "${PIDS[$name]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for log in "$WORK"/valgrind.*.log; do
    [[ -s $log ]] || continue
    echo "---- valgrind found errors ($log) ----" >&2
    head -n 60 "$log" >&2
    ((status != 0)) || status=1
  done
  if ((status != 0)); then
    echo "---- logs of the failed test ($WORK) ----" >&2
    for log in "$WORK"/*.log; do [[ -f $log ]] && { echo "== $log" >&2; tail -n 40 "$log" >&2; }; done
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "-- $*"; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s until it succeeds
# (SECONDS times TIME_SCALE).
wait_for() {
  local seconds=$(($1 * TIME_SCALE)) what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for $what"
    sleep 0.1
  done
}

INGEST="ipc://$WORK/ingest.sock"
# The query endpoint too: the default (tcp://127.0.0.1:7701) would clash between concurrent tests.
QUERY="ipc://$WORK/query.sock"

# How the collector authenticates: plain by default; make_keys and a test may change it.
COLLECTOR_SECURITY=(--allow-plain)

# init_store [DIR]: creates the collector's store (default $WORK/collector) the way an operator
# does, once, with `totalplace-collector init`; prints nothing, fails the test if init fails.
init_store() {
  local dir=${1:-$WORK/collector}
  "${RUN[@]}" "$COLLECTOR" init --state-dir "$dir" >"$WORK/store-id" 2>>"$WORK/collector.log" \
    || fail "totalplace-collector init --state-dir $dir failed: $(tail -n 1 "$WORK/collector.log")"
}

# start_collector [OPTION...]: the collector on $WORK/collector, made by init_store on the first
# start of a test (a restart reuses the store; a test that wants to see a missing store refused
# runs $COLLECTOR itself).
start_collector() {
  [[ -e $WORK/collector ]] || init_store
  # A stopped collector may leave its ipc:// socket files behind: without this, a restart would
  # look ready at once (and a signal sent then would find it still starting).
  rm -f "$WORK/ingest.sock" "$WORK/query.sock"
  "${RUN[@]}" "$COLLECTOR" --state-dir "$WORK/collector" --ingest "$INGEST" --query "$QUERY" \
    "${COLLECTOR_SECURITY[@]}" "$@" >>"$WORK/collector.log" 2>&1 &
  PIDS[collector]=$!
  wait_for 20 "the collector's ingest socket" test -S "$WORK/ingest.sock"
  wait_for 20 "the collector's query socket" test -S "$WORK/query.sock"
}

# make_keys NAME ROLE [BODIES]: a certificate pair in $WORK/keys (NAME.cert, NAME.cert_secret);
# an agent's or query user's public half is also put in $WORK/keys/authorised, the folder the
# collector reads (reload it with SIGHUP when it runs).
make_keys() {
  local name=$1 role=$2 bodies=${3:-}
  mkdir -p "$WORK/keys/authorised"
  "$CLI_BIN" keygen "$name" --role "$role" ${bodies:+--bodies "$bodies"} --dir "$WORK/keys" >/dev/null \
    || fail "keygen $name failed"
  [[ $role == collector ]] || cp "$WORK/keys/$name.cert" "$WORK/keys/authorised/"
}

# use_curve: the collector's own keys, and COLLECTOR_SECURITY set to use them.
use_curve() {
  make_keys collector collector
  COLLECTOR_SECURITY=(--set "collector/curve_secret_cert=$WORK/keys/collector.cert_secret"
                      --set "collector/authorised_certs=$WORK/keys/authorised")
}

# stop NAME [SIGNAL]: signals a started daemon and waits for it; returns its exit status.
stop() {
  local name=$1 signal=${2:-TERM} pid=${PIDS[$1]} status=0
  kill -s "$signal" "$pid" 2>/dev/null || true
  wait "$pid" || status=$?
  unset "PIDS[$name]"
  return $status
}

# AGENT_SECURITY NAME: how agent NAME connects: plain by default (a test may redefine it; see
# agent_keys). Options without spaces: agent_args is split on blanks.
AGENT_SECURITY() { echo --allow-plain; }

# agent_keys NAME: the options of agent NAME connecting with its keys from make_keys.
agent_keys() {
  echo --set "agent/curve_secret_cert=$WORK/keys/$1.cert_secret" \
    --set "agent/collector_public_cert=$WORK/keys/collector.cert"
}

# agent_args NAME BODY: the options of an agent whose folders live under $WORK/NAME.
agent_args() {
  echo --id "$1" --body "$2" --inbox "$WORK/$1/inbox" --state-dir "$WORK/$1/state" \
    --collector "$INGEST" --set agent/ack_timeout_ms=$((2000 * TIME_SCALE)) \
    --set agent/retry_max_ms=1000 $(AGENT_SECURITY "$1")
}

# start_agent NAME BODY [OPTIONS...]: runs an agent daemon in the background.
start_agent() {
  local name=$1 body=$2; shift 2
  mkdir -p "$WORK/$name/inbox"
  # shellcheck disable=SC2046
  "${RUN[@]}" "$AGENT" $(agent_args "$name" "$body") "$@" >>"$WORK/$name.log" 2>&1 &
  PIDS[$name]=$!
}

# drain_agent NAME BODY [OPTIONS...]: runs the agent with --once until its inbox and outbox are
# empty; it must exit 0 (no file held or failed).
drain_agent() {
  local name=$1 body=$2; shift 2
  mkdir -p "$WORK/$name/inbox"
  # shellcheck disable=SC2046
  timeout $((120 * TIME_SCALE)) "${RUN[@]}" "$AGENT" $(agent_args "$name" "$body") --once "$@" \
    >>"$WORK/$name.log" 2>&1 || fail "agent $name did not deliver everything within $((120 * TIME_SCALE)) s (or held a file: see $WORK/$name/inbox/failed)"
}

# drain_agent_status NAME BODY [OPTIONS...]: as drain_agent, but prints the exit status instead of
# failing on it (a run that held a file exits 1).
drain_agent_status() {
  local name=$1 body=$2 status=0; shift 2
  mkdir -p "$WORK/$name/inbox"
  # shellcheck disable=SC2046
  timeout $((120 * TIME_SCALE)) "${RUN[@]}" "$AGENT" $(agent_args "$name" "$body") --once "$@" \
    >>"$WORK/$name.log" 2>&1 || status=$?
  echo "$status"
}

# drop NAME FILE [AS]: drops a CSV into an agent's inbox the way a finance system should
# (written under a hidden name, then renamed).
drop() {
  local name=$1 file=$2 as=${3:-$(basename "$2")}
  mkdir -p "$WORK/$name/inbox"
  cp "$file" "$WORK/$name/inbox/.$as.part"
  mv "$WORK/$name/inbox/.$as.part" "$WORK/$name/inbox/$as"
}

# expected BODIES FILES...: the reference totals, sorted.
expected() {
  local bodies=$1; shift
  gawk -v BODIES="$bodies" -f "$SRC/tests/integration/expected_totals.awk" "$@" | sort
}

# actual: the same lines read from the collector's store with the real CLI.
actual() {
  local db=$WORK/collector
  "$CLI" --db "$db" --format csv neighbourhoods | gawk -F, 'NR > 1 {
      pence = $3; sub(/\./, "", pence); printf "total %s %d %d\n", $2, pence, $4 }'
  for nbh in $("$CLI" --db "$db" --format csv neighbourhoods | gawk -F, 'NR > 1 { print $2 }'); do
    "$CLI" --db "$db" --format csv totals --neighbourhood "$nbh" --by body |
      gawk -F, -v n="$nbh" 'NR > 1 { pence = $2; sub(/\./, "", pence); printf "body %s %s %d %d\n", n, $1, pence, $3 }'
  done
  "$CLI" --db "$db" --format csv totals | gawk -F, 'NR > 1 { pence = $1; sub(/\./, "", pence); printf "grand %d %d\n", pence, $2 }'
}

# check_totals BODIES FILES...: the collector's totals must equal the reference exactly.
check_totals() {
  local bodies=$1; shift
  expected "$bodies" "$@" >"$WORK/expected.txt"
  actual | sort >"$WORK/actual.txt"
  if ! diff -u "$WORK/expected.txt" "$WORK/actual.txt" >"$WORK/totals.diff"; then
    cat "$WORK/totals.diff" >&2
    fail "collector totals differ from the totals computed from the CSV files"
  fi
  note "totals match the reference: $(grep -c '^total' "$WORK/expected.txt") neighbourhoods, $(grep '^grand' "$WORK/expected.txt")"
}

# stored_records: how many records the collector's store holds now (0 before the first batch).
# (stats in CSV: the store's identity, a blank line, then the counters' header and row.)
stored_records() {
  "$CLI" --db "$WORK/collector" --format csv stats 2>/dev/null |
    gawk -F, '$1 == "batches" { header = NR } header && NR == header + 1 { print $7; found = 1 }
              END { if (!found) print 0 }'
}

# more_than N: succeeds when the store holds more than N records.
more_than() { (($(stored_records) > $1)); }
