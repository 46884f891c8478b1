#!/usr/bin/env bash
# test_monitoring: what an operator's tools see of the real daemons.
#   - health: with NOTIFY_SOCKET pointing at a datagram socket (tests/tools/tp_notify, playing
#     systemd), both daemons send READY=1, a STATUS= line and WATCHDOG=1 pings, and STOPPING=1;
#   - metrics: the Prometheus endpoints pass `promtool check metrics`, scraped again and again
#     during a delivery; the counters only grow, and at the end the collector's totals equal what
#     the store says (totalplace stats) and the agent's equal the collector's;
#   - a metrics endpoint off loopback is refused unless allowed on purpose;
#   - logs: ISO-8601 UTC with milliseconds, a level letter and a component on every line, the
#     syslog priority first when stderr is the journal (JOURNAL_STREAM), a line at SIGTERM saying
#     what was drained.
source "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null || fail "promtool is needed (package prometheus: deploy/install-deps.sh)"
command -v curl >/dev/null || fail "curl is needed (deploy/install-deps.sh)"
NOTIFY=$BIN/tests/tp_notify
[[ -x $NOTIFY ]] || fail "$NOTIFY is not built"

# metrics_url LOG: the URL a daemon said it serves its metrics on.
metrics_url() { grep -o 'metrics on http://[^ ]*' "$1" | tail -n 1 | cut -d' ' -f3; }
# sample FILE NAME [LABELS]: the value of one sample in a scrape (fails when it is missing).
sample() {
  gawk -v name="$2" -v labels="${3:-}" '
    { split($0, parts, " "); key = parts[1] }
    (labels == "" && key == name) || (labels != "" && key == name "{" labels "}") { print parts[2]; found = 1; exit }
    END { if (!found) exit 1 }' "$1" || fail "no sample $2{${3:-}} in $1"
}
# scrape URL FILE: GET /metrics into FILE, which promtool must pass.
scrape() {
  curl -sf --max-time 5 "$1" >"$2" || fail "GET $1 failed"
  promtool check metrics <"$2" >"$WORK/promtool.out" 2>&1 || fail "promtool check metrics: $(cat "$WORK/promtool.out")"
}

# ---------------------------------------------------------------- a metrics endpoint off loopback
note "a metrics endpoint off loopback is refused unless allowed"
init_store
if "$COLLECTOR" --check --state-dir "$WORK/collector" --allow-plain --ingest "$INGEST" --query "$QUERY" \
  --set collector/metrics_endpoint=0.0.0.0:9464 >"$WORK/check.out" 2>&1; then
  fail "the collector accepted a metrics endpoint on every address"
fi
grep -q "collector/metrics_allow_remote" "$WORK/check.out" || fail "the refusal does not name the key that allows it: $(cat "$WORK/check.out")"
"$COLLECTOR" --check --state-dir "$WORK/collector" --allow-plain --ingest "$INGEST" --query "$QUERY" \
  --set collector/metrics_endpoint=0.0.0.0:9464 --set collector/metrics_allow_remote=1 >"$WORK/check.out" 2>&1 ||
  fail "collector/metrics_allow_remote = 1 did not allow it: $(cat "$WORK/check.out")"
# shellcheck disable=SC2046
if "$AGENT" $(agent_args council GB-LAE-BNS) --set agent/metrics_endpoint=10.1.2.3:9465 -n >"$WORK/check.out" 2>&1; then
  fail "the agent accepted a metrics endpoint off loopback"
fi
grep -q "agent/metrics_allow_remote" "$WORK/check.out" || fail "the agent's refusal does not name the key: $(cat "$WORK/check.out")"

# ---------------------------------------------------------------- health, metrics and logs while delivering
note "health and metrics while an agent delivers"
"$NOTIFY" "$WORK/c.notify" >"$WORK/collector.notify" 2>&1 &
PIDS[c_notify]=$!
"$NOTIFY" "$WORK/a.notify" >"$WORK/agent.notify" 2>&1 &
PIDS[a_notify]=$!
wait_for 10 "the notify sockets" test -S "$WORK/c.notify" -a -S "$WORK/a.notify"
# stderr goes to a file whose device and inode JOURNAL_STREAM names, as systemd's would.
: >"$WORK/collector.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$WORK/collector.log") NOTIFY_SOCKET=$WORK/c.notify WATCHDOG_USEC=400000 \
  start_collector --set collector/metrics_endpoint=127.0.0.1:0
wait_for 20 "the collector's metrics endpoint" grep -q "metrics on http://" "$WORK/collector.log"
CURL=$(metrics_url "$WORK/collector.log")
wait_for 10 "the collector's READY=1" grep -qx "READY=1" "$WORK/collector.notify"

bash "$SRC/tests/integration/make_exports.sh" "$WORK/csv" 30000 11
drop council "$WORK/csv/council.csv"
: >"$WORK/council.log"
NOTIFY_SOCKET=$WORK/a.notify WATCHDOG_USEC=400000 start_agent council GB-LAE-BNS \
  --set agent/metrics_endpoint=127.0.0.1:0 --set agent/batch_records=50 --set agent/window=1
wait_for 20 "the agent's metrics endpoint" grep -q "metrics on http://" "$WORK/council.log"
AURL=$(metrics_url "$WORK/council.log")

# Scrape while it delivers: every scrape passes promtool, and no counter goes back.
previous=0 scrapes=0 moved=0
while :; do
  scrape "$CURL" "$WORK/c.prom"
  scrape "$AURL" "$WORK/a.prom"
  accepted=$(sample "$WORK/c.prom" totalplace_collector_records_total 'outcome="accepted"')
  ((accepted >= previous)) || fail "records_total{accepted} went back from $previous to $accepted"
  ((accepted > previous && previous > 0)) && moved=$((moved + 1))
  previous=$accepted scrapes=$((scrapes + 1))
  [[ $(sample "$WORK/a.prom" totalplace_agent_outbox_pending_batches 2>/dev/null) == 0 &&
    $(sample "$WORK/a.prom" totalplace_agent_files_total 'outcome="taken"') == 1 ]] && break
  ((scrapes < 600)) || fail "the agent did not deliver within $scrapes scrapes"
  sleep 0.05
done
note "$scrapes scrapes of each endpoint passed promtool; the accepted count grew between $moved of them"
((moved >= 1)) || fail "no scrape saw the counters move during the delivery"

# At the end, the collector's samples are the store's own numbers, and the agent's agree.
scrape "$CURL" "$WORK/c.prom"
scrape "$AURL" "$WORK/a.prom"
"$CLI" --db "$WORK/collector" --format json stats >"$WORK/stats.json" || fail "stats failed"
for outcome in accepted duplicate superseded stale rejected; do
  want=$(jq -r ".counters.$outcome" "$WORK/stats.json")
  got=$(sample "$WORK/c.prom" totalplace_collector_records_total "outcome=\"$outcome\"")
  [[ $got == "$want" ]] || fail "records_total{$outcome} is $got, the store says $want"
done
[[ $(sample "$WORK/c.prom" totalplace_collector_store_records) == $(jq -r '.counters.records_stored' "$WORK/stats.json") ]] ||
  fail "store_records differs from the store's record count"
batches=$(sample "$WORK/c.prom" totalplace_collector_store_batches_total)
[[ $batches == $(jq -r '.counters.batches' "$WORK/stats.json") ]] || fail "store_batches_total differs from the store's"
# Each of the agent's batches acknowledged once, in seq order from 1: as many as its mark in the
# store. (The store counts a batch sent again after an ack timeout twice, so its batches may be
# more.)
acked=$(sample "$WORK/a.prom" totalplace_agent_batches_acknowledged_total)
mark=$(jq -r '.agents[] | select(.agent_id == "council") | .last_batch_seq' "$WORK/stats.json")
((acked == mark)) || fail "the agent counts $acked batches acknowledged, its mark in the store is $mark"
((acked <= batches)) || fail "the agent counts $acked batches acknowledged, the store applied $batches"
# Everything delivered: nothing waits, and the last Ack is recent.
[[ $(sample "$WORK/a.prom" totalplace_agent_oldest_pending_age_seconds) == 0 ]] \
  || fail "the agent reports a waiting batch's age with nothing pending"
last_ack=$(sample "$WORK/a.prom" totalplace_agent_last_ack_timestamp_seconds)
((last_ack > 0 && last_ack <= $(date +%s) && last_ack > $(date +%s) - 600)) \
  || fail "the agent's last Ack time $last_ack is not a recent unix time"
applied=$(sample "$WORK/c.prom" totalplace_collector_batches_total 'status="applied"')
((applied == batches)) || fail "batches_total{applied} is $applied, the store holds $batches"
commits=$(sample "$WORK/c.prom" totalplace_collector_group_commit_duration_seconds_count)
((commits >= 1 && commits <= batches)) || fail "$commits group commits for $batches batches"
[[ $(sample "$WORK/c.prom" totalplace_collector_group_commit_duration_seconds_bucket 'le="+Inf"') == "$commits" ]] ||
  fail "the +Inf bucket is not the histogram's count"
[[ $(sample "$WORK/c.prom" totalplace_collector_connected_peers 'socket="ingest"') == 1 ]] ||
  fail "the collector does not count the agent as connected"
queries=$(sample "$WORK/c.prom" totalplace_collector_query_duration_seconds_count)
"$CLI" --collector "$QUERY" stats >/dev/null || fail "a question to the query endpoint failed"
scrape "$CURL" "$WORK/c.prom"
(($(sample "$WORK/c.prom" totalplace_collector_query_duration_seconds_count) == queries + 1)) ||
  fail "the query latency histogram did not count the question"
check_totals "GB-LAE-BNS" "$WORK/csv/council.csv"

# Health: READY, a current STATUS, watchdog pings (WATCHDOG_USEC 0.4 s: pinged every 0.1 s or so).
sleep 1
for who in collector agent; do
  file=$WORK/$who.notify
  grep -qx "READY=1" "$file" || fail "the $who sent no READY=1: $(head -c 500 "$file")"
  (($(grep -cx "WATCHDOG=1" "$file") >= 3)) || fail "the $who pinged the watchdog $(grep -cx "WATCHDOG=1" "$file") times"
done
grep -q "^STATUS=serving 1 agents and 0 query clients; .* the store holds $(jq -r '.counters.records_stored' "$WORK/stats.json") records" "$WORK/collector.notify" ||
  fail "the collector's status line is not current: $(grep STATUS "$WORK/collector.notify" | tail -n 2)"
grep -q "^STATUS=0 batches pending (0 bytes) for $INGEST; $acked acknowledged since start" "$WORK/agent.notify" ||
  fail "the agent's status line is not current: $(grep STATUS "$WORK/agent.notify" | tail -n 2)"

stop council TERM || fail "the agent did not stop cleanly"
stop collector TERM || fail "the collector did not stop cleanly"
grep -qx "STOPPING=1" "$WORK/collector.notify" || fail "the collector sent no STOPPING=1"
grep -qx "STOPPING=1" "$WORK/agent.notify" || fail "the agent sent no STOPPING=1"

# ---------------------------------------------------------------- the logs
note "log lines: UTC milliseconds, level, component; priorities for the journal"
bad=$(grep -cvE '^<[3467]>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z [DIWE] [a-z]+: ' "$WORK/collector.log" || true)
((bad == 0)) || fail "$bad collector lines are not journal lines: $(grep -vE '^<[3467]>' "$WORK/collector.log" | head -n 3)"
grep -qE '^<6>[^ ]+ I collector: ' "$WORK/collector.log" || fail "no info line carries priority 6"
grep -qE '^<4>[^ ]+ W collector: ' "$WORK/collector.log" || fail "no warning line carries priority 4 (allow_plain warns)"
bad=$(grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z [DIWE] [a-z]+: ' "$WORK/council.log" || true)
((bad == 0)) || fail "$bad agent lines are not log lines: $(grep -vE '^[0-9]{4}-' "$WORK/council.log" | head -n 3)"
grep -qE '^<6>[^ ]+ I ingest: drained [0-9]+ batches \([0-9]+ records\) in [0-9]+ ms; since start [0-9]+ batches' "$WORK/collector.log" ||
  fail "the collector did not say what it drained at SIGTERM"
grep -qE '^<6>[^ ]+ I collector: SIGTERM: stopping' "$WORK/collector.log" || fail "the collector did not log SIGTERM"
echo "test_monitoring: all checks passed"
echo "1 passed, 0 failed"
