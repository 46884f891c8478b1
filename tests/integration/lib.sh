# Shared by the integration tests: start real daemons on ipc:// sockets in a temporary folder,
# wait for conditions with deadlines, and compare the collector's totals with an independent
# reference computed from the CSV files. Source it; it sets -euo pipefail and a cleanup trap.
set -euo pipefail

BIN=${TOTALPLACE_BIN:?TOTALPLACE_BIN must name the build folder}
SRC=${TOTALPLACE_SOURCE:?TOTALPLACE_SOURCE must name the source folder}
COLLECTOR=$BIN/collector/totalplace-collector
AGENT=$BIN/agents/totalplace-agent
CLI=$BIN/collector/totalplace
for tool in "$COLLECTOR" "$AGENT" "$CLI"; do
  [[ -x $tool ]] || { echo "FAIL: $tool is not built" >&2; exit 1; }
done
command -v gawk >/dev/null || { echo "FAIL: gawk is needed (deploy/install-deps.sh installs it)" >&2; exit 1; }

# Short folder names: an ipc:// path must fit in a Unix socket address (107 bytes).
WORK=$(mktemp -d /tmp/tp-it.XXXXXX)
declare -A PIDS=()

cleanup() {
  local status=$?
  for name in "${!PIDS[@]}"; do kill -9 "${PIDS[$name]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
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

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for $what"
    sleep 0.1
  done
}

INGEST="ipc://$WORK/ingest.sock"
# The query endpoint too: the default (tcp://127.0.0.1:7701) would clash between concurrent tests.
QUERY="ipc://$WORK/query.sock"

start_collector() {
  "$COLLECTOR" --state-dir "$WORK/collector" --ingest "$INGEST" --query "$QUERY" "$@" >>"$WORK/collector.log" 2>&1 &
  PIDS[collector]=$!
  wait_for 20 "the collector's ingest socket" test -S "$WORK/ingest.sock"
}

# stop NAME [SIGNAL]: signals a started daemon and waits for it; returns its exit status.
stop() {
  local name=$1 signal=${2:-TERM} pid=${PIDS[$1]} status=0
  kill -s "$signal" "$pid" 2>/dev/null || true
  wait "$pid" || status=$?
  unset "PIDS[$name]"
  return $status
}

# agent_args NAME BODY: the options of an agent whose folders live under $WORK/NAME.
agent_args() {
  echo --id "$1" --body "$2" --inbox "$WORK/$1/inbox" --state-dir "$WORK/$1/state" \
    --collector "$INGEST" --set agent/ack_timeout_ms=2000 --set agent/retry_max_ms=1000
}

# start_agent NAME BODY [OPTIONS...]: runs an agent daemon in the background.
start_agent() {
  local name=$1 body=$2; shift 2
  mkdir -p "$WORK/$name/inbox"
  # shellcheck disable=SC2046
  "$AGENT" $(agent_args "$name" "$body") "$@" >>"$WORK/$name.log" 2>&1 &
  PIDS[$name]=$!
}

# drain_agent NAME BODY: runs the agent with --once until its inbox and outbox are empty.
drain_agent() {
  local name=$1 body=$2
  mkdir -p "$WORK/$name/inbox"
  # shellcheck disable=SC2046
  timeout 120 "$AGENT" $(agent_args "$name" "$body") --once >>"$WORK/$name.log" 2>&1 \
    || fail "agent $name did not deliver everything within 120 s"
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
stored_records() {
  "$CLI" --db "$WORK/collector" --format csv stats 2>/dev/null | gawk -F, 'NR == 2 { print $7; found = 1 } END { if (!found) print 0 }'
}

# more_than N: succeeds when the store holds more than N records.
more_than() { (($(stored_records) > $1)); }
