# Security, real processes (docs/security.md): a collector with CURVE keys and a folder of
# authorised certificates, real agents and the real CLI, and test tools sending hostile frames.
#   - an agent with an unknown key is refused and delivers nothing; it keeps its batches
#   - an authorised agent's export with a row of a body its certificate does not list: that record
#     is rejected (reason in its rejects file, a line in the collector's log), the rest accepted
#   - a query without keys, with an unknown key or with an agent's key is refused; with a query
#     key it answers as the store does
#   - garbage, truncated, oversized and giant frames on both endpoints are counted and logged
#     while a well-behaved agent keeps delivering
#   - a revoked key (SIGHUP) is refused and keeps its batches; re-authorised, it delivers
#   - the limit of connected agents refuses the agent over it until one leaves
#   - the totals at the end equal an independent reference to the penny
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is required (apt-get install jq)"
SEND=$BIN/tests/tp_send
RAW=$BIN/tests/tp_query_raw
for tool in "$SEND" "$RAW"; do [[ -x $tool ]] || fail "$tool is not built"; done
bash "$SRC/tests/integration/make_exports.sh" "$WORK/csv" 1500 5

# ---------------------------------------------------------------- keys
use_curve
make_keys council agent GB-LAE-BNS
make_keys police agent GB-PF-SYP
make_keys hostile agent GB-HOSTILE
make_keys analyst query
make_keys stranger agent GB-LAE-BNS
make_keys outsider query
# Made, but never authorised.
rm "$WORK/keys/authorised/stranger.cert" "$WORK/keys/authorised/outsider.cert"
AGENT_SECURITY() { agent_keys "$1"; }

note "the shipped collector.conf checks out with keys; a bad certificate fails the check, naming it"
CHECK=("$COLLECTOR" -c "$SRC/deploy/collector.conf" --set "collector/state_dir=$WORK/check"
       --set "collector/curve_secret_cert=$WORK/keys/collector.cert_secret"
       --set "collector/authorised_certs=$WORK/keys/authorised" --check)
"${CHECK[@]}" >"$WORK/check.out" 2>&1 || fail "deploy/collector.conf does not check out: $(cat "$WORK/check.out")"
grep -q "configuration OK (CURVE: 3 agent and 1 query certificates authorised)" "$WORK/check.out" ||
  fail "--check did not count the certificates: $(cat "$WORK/check.out")"
printf 'metadata\n    role = "agent"\ncurve\n    public-key = "short"\n' >"$WORK/keys/authorised/broken.cert"
if "${CHECK[@]}" >"$WORK/check.out" 2>&1; then fail "a broken certificate passed --check"; fi
grep -q "broken.cert is not a CURVE certificate" "$WORK/check.out" || fail "--check did not name the broken certificate: $(cat "$WORK/check.out")"
rm "$WORK/keys/authorised/broken.cert"
if "$COLLECTOR" --state-dir "$WORK/check" --ingest tcp://0.0.0.0:17999 --allow-plain --check >"$WORK/check.out" 2>&1; then
  fail "a plain collector on a public endpoint passed --check"
fi
grep -q "tcp://0.0.0.0:17999 is not an ipc://, inproc:// or loopback" "$WORK/check.out" || fail "plain on 0.0.0.0: $(cat "$WORK/check.out")"
# A secret certificate in the authorised folder stops the check and the start, naming it.
cp "$WORK/keys/council.cert_secret" "$WORK/keys/authorised/"
if "${CHECK[@]}" >"$WORK/check.out" 2>&1; then fail "a secret certificate in the authorised folder passed --check"; fi
grep -q "holds a secret certificate, council.cert_secret" "$WORK/check.out" || fail "--check did not name the secret: $(cat "$WORK/check.out")"
init_store
status=0
"$COLLECTOR" --state-dir "$WORK/collector" --ingest "$INGEST" --query "$QUERY" "${COLLECTOR_SECURITY[@]}" \
  >"$WORK/secret-start.log" 2>&1 || status=$?
((status == 1)) || fail "the collector started (or exited $status) with a secret certificate in its authorised folder"
grep -q "council.cert_secret: a secret key belongs only on its owner's host" "$WORK/secret-start.log" ||
  fail "the collector did not say why: $(cat "$WORK/secret-start.log")"
rm "$WORK/keys/authorised/council.cert_secret"
# An agent's secret certificate its group may write is refused, as one every user may read.
chmod 0660 "$WORK/keys/council.cert_secret"
# shellcheck disable=SC2046
if "$AGENT" $(agent_args council GB-LAE-BNS) -n >"$WORK/check.out" 2>&1; then fail "the agent took a group-writable secret certificate"; fi
grep -q "council.cert_secret can be written by its group (mode 0660)" "$WORK/check.out" || fail "the agent did not say why: $(cat "$WORK/check.out")"
chmod 0600 "$WORK/keys/council.cert_secret"
KEYS=$WORK/keys
ASK=("$CLI_BIN" --collector "$QUERY" --cert "$KEYS/analyst.cert_secret" --collector-cert "$KEYS/collector.cert")
start_collector --set log/stats_interval=1
grep -q "CURVE on every endpoint: 3 agent and 1 query certificates authorised" "$WORK/collector.log" ||
  fail "the collector did not say what it authorised: $(grep -m1 CURVE "$WORK/collector.log")"

# ---------------------------------------------------------------- an unknown key
note "an agent with an unknown key is refused and delivers nothing"
cat >"$WORK/stranger.csv" <<'CSV'
Date,Transaction Number,Amount,Service Area,Neighbourhood
2013-04-01,STRANGER-1,999.99,Housing,E01000001
CSV
drop stranger "$WORK/stranger.csv"
start_agent stranger GB-LAE-BNS
wait_for 30 "the stranger to be refused" grep -q "refused this agent's key" "$WORK/stranger.log"
wait_for 30 "the collector to log the refusal" grep -q "refused a connection to ingest .*unknown key" "$WORK/collector.log"
stop stranger TERM || fail "the refused agent did not stop cleanly"
grep -q "1 batches still pending" "$WORK/stranger.log" || fail "the refused agent did not keep its batch: $(tail -n 3 "$WORK/stranger.log")"
if "$CLI" --db "$WORK/collector" record GB-LAE-BNS STRANGER-1 >/dev/null 2>&1; then
  fail "a record from an unknown key reached the store"
fi

# ---------------------------------------------------------------- body authorisation
note "an authorised agent's record for another body is rejected, the rest accepted"
header="Date,Transaction Number,Amount,Service Area,Neighbourhood,Body ID"
{
  echo "$header"
  echo "2013-05-01,C-1,100.00,Housing,E01000001,GB-LAE-BNS"
  echo "2013-05-02,C-2,-20.50,Housing,E01000002,GB-LAE-BNS"
  echo "2013-06-03,C-4,12345.67,Libraries,E01000003,GB-LAE-BNS"
} >"$WORK/council-good.csv"
{ cat "$WORK/council-good.csv"; echo "2013-05-03,C-3,5000.00,Policing,E01000001,GB-PF-SYP"; } >"$WORK/council.csv"
drop council "$WORK/council.csv"
drain_agent council GB-LAE-BNS
rejects=$WORK/council/state/collector-rejects.csv
[[ -f $rejects ]] || fail "the agent kept no collector-rejects file"
grep -F '"GB-PF-SYP","C-3",1,"may not publish for body GB-PF-SYP; the certificate lists GB-LAE-BNS"' "$rejects" >/dev/null ||
  fail "the foreign record's rejection is not in $rejects: $(cat "$rejects")"
[[ $(tail -n +2 "$rejects" | wc -l) -eq 1 ]] || fail "more than one record was rejected: $(cat "$rejects")"
grep -q "ingest: agent council may not publish for body GB-PF-SYP (its certificate lists GB-LAE-BNS): 1 records" "$WORK/collector.log" ||
  fail "the collector logged no line about the foreign record"
"$CLI" --db "$WORK/collector" record GB-LAE-BNS C-4 >/dev/null || fail "the council's own records were not accepted"
if "$CLI" --db "$WORK/collector" record GB-PF-SYP C-3 >/dev/null 2>&1; then
  fail "the foreign record reached the store"
fi

# ---------------------------------------------------------------- query keys
note "queries: without keys, with an unknown key or an agent's key refused; with a query key answered"
expect_refused() { # WHAT EXPECTED_EXIT NEEDLE COMMAND...
  local what=$1 want=$2 needle=$3 status=0; shift 3
  timeout 30 "$@" >"$WORK/refused.out" 2>"$WORK/refused.err" || status=$?
  ((status == want)) || fail "$what: exit $status, expected $want ($(cat "$WORK/refused.err"))"
  grep -qF -- "$needle" "$WORK/refused.err" || fail "$what: \"$needle\" not in: $(cat "$WORK/refused.err")"
  [[ ! -s $WORK/refused.out ]] || fail "$what: an answer came: $(head -n 3 "$WORK/refused.out")"
}
expect_refused "no keys" 1 "needs CURVE keys" "$CLI_BIN" --collector "$QUERY" stats
expect_refused "plain" 1 "refused a plain connection" "$CLI_BIN" --collector "$QUERY" --allow-plain --timeout 5000 stats
expect_refused "unknown key" 1 "refused our key" "$CLI_BIN" --collector "$QUERY" --timeout 5000 \
  --cert "$KEYS/outsider.cert_secret" --collector-cert "$KEYS/collector.cert" stats
expect_refused "an agent's key (CLI)" 1 "role query" "$CLI_BIN" --collector "$QUERY" \
  --cert "$KEYS/council.cert_secret" --collector-cert "$KEYS/collector.cert" stats
status=0
"$RAW" "$QUERY" --cert "$KEYS/council.cert_secret" --server-cert "$KEYS/collector.cert" --timeout 2000 \
  >"$WORK/raw.out" 2>&1 || status=$?
((status == 2)) || fail "an agent's key got an answer on the query endpoint (exit $status): $(cat "$WORK/raw.out")"
wait_for 10 "the collector to log the wrong role" grep -q "refused a connection to query .*has role agent, not query" "$WORK/collector.log"
TOTALPLACE_CERT=$KEYS/analyst.cert_secret TOTALPLACE_COLLECTOR_CERT=$KEYS/collector.cert \
  "$CLI_BIN" --collector "$QUERY" --format csv totals --by body >"$WORK/remote.csv" || fail "the analyst's query failed"
"$CLI" --db "$WORK/collector" --format csv totals --by body >"$WORK/local.csv"
cmp -s "$WORK/remote.csv" "$WORK/local.csv" || fail "the answer through CURVE differs from the store's"

# ---------------------------------------------------------------- hostile frames, a good agent delivering
note "garbage, truncated, oversized and giant frames on both endpoints while an agent delivers"
"${ASK[@]}" --format json stats >"$WORK/before.json" || fail "stats failed"
# The police export in three parts, one dropped each round: the agent delivers between and
# during the hostile frames, over the one connection it keeps.
rows=$(($(wc -l <"$WORK/csv/police.csv") - 1))
gawk -v dir="$WORK/csv" -v rows="$rows" 'NR == 1 { header = $0; next }
  { part = dir "/police-" (int((NR - 2) * 3 / rows) + 1) ".csv"
    if (!(part in started)) { print header > part; started[part] = 1 }
    print > part }' "$WORK/csv/police.csv"
start_agent police GB-PF-SYP --set agent/batch_records=25 --set agent/window=2
HOSTILE=(--cert "$KEYS/hostile.cert_secret" --server-cert "$KEYS/collector.cert" --agent hostile --body GB-HOSTILE)
READER=(--cert "$KEYS/analyst.cert_secret" --server-cert "$KEYS/collector.cert")
for round in 1 2 3; do
  [[ -f $WORK/csv/police-$round.csv ]] || fail "no part $round of the police export"
  last=$(tail -n 1 "$WORK/csv/police-$round.csv" | cut -d, -f2)
  drop police "$WORK/csv/police-$round.csv"
  for kind in --garbage --truncate --oversize --extra-frame; do
    "$SEND" "$INGEST" "${HOSTILE[@]}" --records 5 --first-record $((round * 10)) $kind >"$WORK/hostile.out" 2>&1 ||
      fail "ingest $kind: no ack ($(cat "$WORK/hostile.out"))"
    grep -q "status=MALFORMED" "$WORK/hostile.out" || fail "ingest $kind was not answered MALFORMED: $(cat "$WORK/hostile.out")"
  done
  status=0
  "$SEND" "$INGEST" "${HOSTILE[@]}" --huge --timeout 1000 >"$WORK/hostile.out" 2>&1 || status=$?
  ((status == 2)) || fail "a giant frame on ingest was answered (exit $status)"
  for kind in --garbage --truncate --oversize "--frames 3"; do
    # shellcheck disable=SC2086
    "$RAW" "$QUERY" "${READER[@]}" $kind >"$WORK/raw.out" 2>&1 || fail "query $kind: no reply ($(cat "$WORK/raw.out"))"
    grep -q "status=BAD_QUERY" "$WORK/raw.out" || fail "query $kind was not answered BAD_QUERY: $(cat "$WORK/raw.out")"
  done
  status=0
  "$RAW" "$QUERY" "${READER[@]}" --huge --timeout 1000 >"$WORK/raw.out" 2>&1 || status=$?
  ((status == 2)) || fail "a giant frame on the query endpoint was answered (exit $status)"
  # An unauthenticated client as well: refused at the handshake.
  status=0
  "$SEND" "$INGEST" --garbage --timeout 500 >/dev/null 2>&1 || status=$?
  ((status == 2)) || fail "a plain client's garbage was answered on ingest (exit $status)"
  wait_for 30 "part $round of the police export to arrive ($last)" "$CLI" --db "$WORK/collector" record GB-PF-SYP "$last"
done
grep -q "reconnecting" "$WORK/police.log" && fail "the police agent lost its connection: $(grep -m1 reconnecting "$WORK/police.log")"
kill -0 "${PIDS[collector]}" || fail "the collector died"
"${ASK[@]}" --format json stats >"$WORK/after.json" || fail "stats failed after the hostile frames"
counted() { # JQ_PATH MIN: the counter grew by at least MIN
  local grew
  grew=$(($(jq -r "$1" "$WORK/after.json") - $(jq -r "$1" "$WORK/before.json")))
  ((grew >= $2)) || fail "$1 grew by $grew, expected at least $2"
}
counted .ingest.malformed 12
counted .ingest.oversized 3
counted .ingest.disconnects 3
counted .ingest.handshake_failures 3
counted .queries.bad_queries 12
for line in "ingest: malformed message from" "is over the limit of 8388608 bytes" "query: bad query from" \
  "ingest: a peer on ipc://$WORK/ingest.sock failed the handshake: "; do
  grep -qF "$line" "$WORK/collector.log" || fail "the collector logged no \"$line\""
done
# Handshake failures in words, and disconnects (every CLI question is one) only at debug.
grep -F "event 0x" "$WORK/collector.log" && fail "a handshake failure was logged as an event number"
grep -E '^[^ ]+Z [IWE] (ingest|query): .*disconnected' "$WORK/collector.log" && fail "an ordinary disconnect was logged above debug"
# The good agent was delivering all along.
stop police TERM || fail "the police agent did not stop cleanly"
drain_agent police GB-PF-SYP
[[ ! -s $WORK/police/state/collector-rejects.csv ]] || fail "the collector rejected police records: $(head -n 3 "$WORK/police/state/collector-rejects.csv")"
if "$CLI" --db "$WORK/collector" --format csv totals --body GB-HOSTILE | gawk -F, 'NR == 2 && $2 > 0 { bad = 1 } END { exit !bad }'; then
  fail "a hostile frame put records in the store"
fi

# ---------------------------------------------------------------- revocation
note "a revoked key is refused at once and keeps its batches; re-authorised, it delivers"
start_agent council GB-LAE-BNS
rm "$KEYS/authorised/council.cert"
kill -HUP "${PIDS[collector]}"
wait_for 10 "the collector to reload its certificates" grep -q "certificates reloaded: 2 agent and 1 query" "$WORK/collector.log"
cat >"$WORK/council-late.csv" <<'CSV'
Date,Transaction Number,Amount,Service Area,Neighbourhood
2014-01-10,C-9,77.77,Housing,E01000004
CSV
drop council "$WORK/council-late.csv"
wait_for 30 "the revoked agent to be refused" grep -q "refused this agent's key\|no longer authorised" "$WORK/council.log"
sleep 1
if "$CLI" --db "$WORK/collector" record GB-LAE-BNS C-9 >/dev/null 2>&1; then
  fail "a revoked agent's record reached the store"
fi
# A reload that finds a secret certificate in the folder keeps the keys loaded, and says why.
cp "$KEYS/council.cert_secret" "$KEYS/authorised/"
kill -HUP "${PIDS[collector]}"
wait_for 30 "the reload to refuse the secret" grep -q "reload of the authorised certificates failed, keeping the ones loaded: .*council.cert_secret" "$WORK/collector.log"
rm "$KEYS/authorised/council.cert_secret"
cp "$KEYS/council.cert" "$KEYS/authorised/"
kill -HUP "${PIDS[collector]}"
wait_for 30 "the re-authorised agent to deliver" "$CLI" --db "$WORK/collector" record GB-LAE-BNS C-9
stop council TERM || fail "the council agent did not stop cleanly"

# ---------------------------------------------------------------- the limit of connected agents
note "with limits/max_agents = 1 the second agent waits until the first leaves"
stop collector TERM || fail "the collector did not exit 0 on SIGTERM"
start_collector --set limits/max_agents=1 --set limits/handshake_timeout_ms=$((1000 * TIME_SCALE))
start_agent council GB-LAE-BNS
first_connected() { "${ASK[@]}" --format json stats | jq -e '.ingest.connections >= 1 and .ingest.handshake_failures == 0'; }
wait_for 30 "the first agent to connect" first_connected
sleep 1
cat >"$WORK/police-late.csv" <<'CSV'
Date,Transaction Number,Amount,Service Area,Neighbourhood
2014-02-11,P-LATE,10.00,Policing,E01000005
CSV
drop police "$WORK/police-late.csv"
start_agent police GB-PF-SYP
wait_for 30 "the collector to refuse the second agent" grep -q "1 agents connected already, the most allowed" "$WORK/collector.log"
wait_for 30 "the second agent to log the failed handshake" grep -q "limits/max_agents" "$WORK/police.log"
if "$CLI" --db "$WORK/collector" record GB-PF-SYP P-LATE >/dev/null 2>&1; then
  fail "the agent over the limit delivered"
fi
stop council TERM || fail "the council agent did not stop cleanly"
wait_for 60 "the second agent to deliver once the first left" "$CLI" --db "$WORK/collector" record GB-PF-SYP P-LATE
stop police TERM || fail "the police agent did not stop cleanly"

# ---------------------------------------------------------------- exact totals
note "the totals are exact"
check_totals "GB-LAE-BNS GB-PF-SYP GB-PF-SYP GB-PF-SYP GB-LAE-BNS GB-PF-SYP" "$WORK/council-good.csv" \
  "$WORK/csv/police-1.csv" "$WORK/csv/police-2.csv" "$WORK/csv/police-3.csv" "$WORK/council-late.csv" \
  "$WORK/police-late.csv"
stop collector TERM || fail "the collector did not exit 0 on SIGTERM"
grep -q "stopped" "$WORK/collector.log" || fail "the collector did not log a clean stop"
echo "test_security: all checks passed"
