#!/usr/bin/env bash
# test_limits: the connection limits count authenticated peers, whatever junk comes.
#   - 300 raw TCP connections (half of them sending bytes that are not ZeroMQ, half silent) are
#     opened against the ingest endpoint; then 8 agents with good keys start against
#     limits/max_agents = 5: exactly 5 deliver, the other 3 are told "refused: agent limit
#     reached" and keep their batches; the count stays 5 while the junk comes and goes;
#   - when connected agents leave, the waiting ones deliver: every total is exact;
#   - with limits/max_query_clients = 1 and one client holding its place, the CLI says
#     "refused: query client limit reached".
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || fail "curl is needed (deploy/install-deps.sh)"
SEND=$BIN/tests/tp_send
RAW=$BIN/tests/tp_query_raw
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
INGEST=tcp://127.0.0.1:$port

use_curve
make_keys analyst query
for i in 1 2 3 4 5 6 7 8; do make_keys "a$i" agent "GB-A$i"; done
AGENT_SECURITY() { agent_keys "$1"; }
KEYS=$WORK/keys
ASK=("$CLI_BIN" --collector "$QUERY" --cert "$KEYS/analyst.cert_secret" --collector-cert "$KEYS/collector.cert")

init_store
"${RUN[@]}" "$COLLECTOR" --state-dir "$WORK/collector" --ingest "$INGEST" --query "$QUERY" \
  "${COLLECTOR_SECURITY[@]}" --set limits/max_agents=5 --set limits/max_query_clients=1 \
  --set limits/handshake_timeout_ms=$((3000 * TIME_SCALE)) --set collector/metrics_endpoint=127.0.0.1:0 \
  >>"$WORK/collector.log" 2>&1 &
PIDS[collector]=$!
wait_for 20 "the collector's metrics endpoint" grep -q "metrics on http://" "$WORK/collector.log"
URL=$(grep -o 'metrics on http://[^ ]*' "$WORK/collector.log" | cut -d' ' -f3)
# metric NAME LABELS: one sample of the collector's endpoint.
metric() {
  curl -sf --max-time 5 "$URL" | gawk -v key="$1{$2}" '$1 == key { print $2; found = 1 } END { exit !found }'
}
metric_is() { [[ $(metric "$1" "$2") == "$3" ]]; }
metric_at_least() { (($(metric "$1" "$2") >= $3)); }

note "300 junk connections, then 8 agents against limits/max_agents = 5"
"$SEND" "$INGEST" --connections 300 --timeout $((6000 * TIME_SCALE)) >"$WORK/junk.out" 2>&1 &
PIDS[junk]=$!
wait_for 20 "the junk connections to be open" grep -q "junk opened=300" "$WORK/junk.out"
wait_for 20 "the collector to see the silent ones" metric_at_least totalplace_collector_open_connections 'socket="ingest"' 100
[[ $(metric totalplace_collector_connected_peers 'socket="ingest"') == 0 ]] || fail "junk was counted as agents"
for i in 1 2 3 4 5 6 7 8; do
  printf 'Date,Transaction Number,Amount,Service Area,Neighbourhood\n2023-05-0%d,T-%d-1,1%d.00,Housing,E0100000%d\n2023-05-0%d,T-%d-2,2.5%d,Policing,E01000009\n' \
    "$i" "$i" "$i" "$i" "$i" "$i" "$i" >"$WORK/a$i.csv"
  drop "a$i" "$WORK/a$i.csv"
  start_agent "a$i" "GB-A$i"
done
wait_for 60 "5 agents to be counted" metric_is totalplace_collector_connected_peers 'socket="ingest"' 5
refused_agents() { grep -l "refused: agent limit reached" "$WORK"/a?.log 2>/dev/null | wc -l; }
three_refused() { (($(refused_agents) == 3)); }
wait_for 60 "3 agents to be told they are over the limit" three_refused
delivered() { "$CLI" --db "$WORK/collector" --format csv totals --by body | gawk -F, 'NR > 1 && $3 > 0' | wc -l; }
five_delivered() { (($(delivered) == 5)); }
wait_for 60 "the 5 counted agents to deliver" five_delivered
# The junk closes (and its silent half times out): the count stays right, and nobody more gets in.
wait "${PIDS[junk]}" || fail "tp_send --connections failed: $(cat "$WORK/junk.out")"
unset "PIDS[junk]"
sleep 2
[[ $(metric totalplace_collector_connected_peers 'socket="ingest"') == 5 ]] ||
  fail "after the junk left the collector counts $(metric totalplace_collector_connected_peers 'socket="ingest"') agents, not 5"
(($(delivered) == 5)) || fail "$(delivered) agents delivered with limits/max_agents = 5"
metric_at_least totalplace_collector_over_limit_refusals_total 'socket="ingest"' 3 ||
  fail "the refusals over the limit were not counted"
grep -q "refused batch .* 5 agents connected already, the most allowed (limits/max_agents)" "$WORK/collector.log" ||
  fail "the collector did not log the refusals with the right count"
grep -E "auth: [0-9]+ agents .*connected" "$WORK/collector.log" | grep -vE "auth: [0-5] agents" &&
  fail "a rate line counted more than 5 agents"

note "the query client limit: the CLI says why"
"$RAW" "$QUERY" --cert "$KEYS/analyst.cert_secret" --server-cert "$KEYS/collector.cert" --hold $((30000 * TIME_SCALE)) \
  >"$WORK/holder.out" 2>&1 &
PIDS[holder]=$!
wait_for 20 "the first query client to be counted" metric_is totalplace_collector_connected_peers 'socket="query"' 1
status=0
"${ASK[@]}" stats >"$WORK/cli.out" 2>&1 || status=$?
((status != 0)) || fail "the CLI was answered over the query client limit"
grep -q "refused: query client limit reached" "$WORK/cli.out" || fail "the CLI did not say why: $(cat "$WORK/cli.out")"
grep -q "is the collector running" "$WORK/cli.out" && fail "the CLI blamed a collector that answered: $(cat "$WORK/cli.out")"
kill "${PIDS[holder]}" 2>/dev/null || true
wait "${PIDS[holder]}" 2>/dev/null || true
unset "PIDS[holder]"
wait_for 20 "the query client to leave" metric_is totalplace_collector_connected_peers 'socket="query"' 0
"${ASK[@]}" stats >"$WORK/cli.out" 2>&1 || fail "the CLI was refused with nobody else connected: $(cat "$WORK/cli.out")"

note "connected agents leave: the waiting ones deliver"
for i in 1 2 3 4 5 6 7 8; do
  if "$CLI" --db "$WORK/collector" --format csv totals --body "GB-A$i" | gawk -F, 'NR == 2 && $2 > 0 { ok = 1 } END { exit !ok }'; then
    stop "a$i" TERM || fail "agent a$i did not stop cleanly"
  fi
done
all_delivered() { (($(delivered) == 8)); }
wait_for 60 "the 3 waiting agents to deliver" all_delivered
check_totals "GB-A1 GB-A2 GB-A3 GB-A4 GB-A5 GB-A6 GB-A7 GB-A8" "$WORK"/a?.csv
echo "test_limits: all checks passed"
echo "1 passed, 0 failed"
