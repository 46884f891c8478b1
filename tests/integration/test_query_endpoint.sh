#!/usr/bin/env bash
# test_query_endpoint: a real collector fed by real agents from CSV files (duplicates, a
# correction, a stale copy, a conflict, a withdrawal, rows the agent rejects, credits, commas and
# quotes in text), then every totalplace command in table, CSV and JSON, asked both through the
# collector's query endpoint (--collector) and from its store (--db): the two answers must be the
# same bytes, and equal to what awk computes here from the CSV files. Then stats (the collector's
# own counters on top of the store's), unknown neighbourhoods and records, hostile frames on the
# query socket, an absent and a frozen collector (exit 1 within the timeout, never a hang).
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is required to read the JSON answers (apt-get install jq)"
export LC_ALL=C
cli=$CLI
work=$WORK
RAW=$BIN/tests/tp_query_raw
[[ -x $RAW ]] || fail "no tp_query_raw at $RAW"

# ---------------------------------------------------------------- the input
header="Date,Transaction Number,Amount,Supplier Name,Service Area,Expenses Type,Neighbourhood,Poolable,Revision,Withdrawn"
mkdir -p "$WORK/in"
cat >"$WORK/in/council-1.csv" <<EOF
$header
2013-04-15,T-0001,1234567.89,"ACME, Ltd","Adult social care, ""older"" people",Day care,E01000001,yes,1,no
2014-03-02,T-0002,-12.00,Council Homes,Housing,Refund,E01000001,no,1,no
2014-04-30,T-0003,500.00,,Housing,,E01000002,yes,1,no
2013-03-31,T-0004,7.00,,Libraries,,E01000003,no,1,no
2013-04-15,T-0001,1234567.89,"ACME, Ltd","Adult social care, ""older"" people",Day care,E01000001,yes,1,no
2013-13-01,T-0005,1.00,,Housing,,E01000001,no,1,no
2013-06-01,T-0006,0.99,,Housing,,E01000001,yes,1,no
2015-01-10,T-0007,250.00,Leeds Ltd,Youth services,,E01000005,no,1,no
EOF
cat >"$WORK/in/council-2.csv" <<EOF
$header
2014-03-02,T-0002,-15.00,Council Homes,Housing,"Refund, corrected",E01000001,no,2,no
2014-03-02,T-0002,-12.00,Council Homes,Housing,Refund,E01000001,no,1,no
2013-03-31,T-0004,7.00,,Libraries,,E01000003,no,2,yes
2013-06-01,T-0006,1.99,,Housing,,E01000001,yes,1,no
EOF
cat >"$WORK/in/police.csv" <<EOF
$header
2013-05-20,P 100,25000.00,South Yorkshire Police,Policing,Patrols,E01000001,yes,1,no
2013-12-01,P 101,-750.00,,Policing,Credit,E01000002,no,1,no
2014-04-01,P 102,0.01,,Policing,,E01000001,no,1,no
2014-02-29,P 103,5.00,,Policing,,E01000001,no,1,no
EOF
cat >"$WORK/in/dwp.csv" <<EOF
$header
2015-01-05,D-1,100.00,,Employment support,,E01000004,yes,1,no
2015-02-05,D-2,-100.00,,Employment support,,E01000004,no,1,no
2015-03-05,D-3,"12,34.5",,Employment support,,E01000004,no,1,no
EOF

# ---------------------------------------------------------------- delivery by real agents
start_collector
wait_for 20 "the collector's query socket" test -S "$WORK/query.sock"
deliver() { # name body file: one file, delivered in full before the next
  drop "$1" "$WORK/in/$3"
  drain_agent "$1" "$2"
}
deliver council GB-LAE-BNS council-1.csv
deliver council GB-LAE-BNS council-2.csv
deliver police GB-POL-SY police.csv
deliver dwp GB-DWP dwp.csv
note "four files delivered by three agents"

# ---------------------------------------------------------------- the model, from the CSV files
# Each row as the agent sends it (body|record|revision|neighbourhood|service|period|pence|
# poolable|withdrawn|supplier|description), in delivery order; rows no record can come from (an
# impossible date, an amount that is not one) are left out, as the agent rejects them.
to_records() { # body file
  gawk -v body="$1" 'BEGIN { FPAT = "([^,]*)|(\"([^\"]|\"\")*\")" }
    function cell(i,  s) { s = $i; if (s ~ /^".*"$/) { s = substr(s, 2, length(s) - 2); gsub(/""/, "\"", s) }; return s }
    function valid_date(s,  y, m, d, days) {
      if (s !~ /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/) return 0
      y = substr(s, 1, 4) + 0; m = substr(s, 6, 2) + 0; d = substr(s, 9, 2) + 0
      split("31 29 31 30 31 30 31 31 30 31 30 31", days, " ")
      if (m < 1 || m > 12 || d < 1 || d > days[m]) return 0
      return !(m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    }
    function pence(s,  parts) { split(s, parts, "."); return (s ~ /^-/ ? -1 : 1) * ((s ~ /^-/ ? -parts[1] : parts[1]) * 100 + parts[2]) }
    function flag(s) { s = tolower(s); return (s == "yes" || s == "y" || s == "true" || s == "1") ? "y" : "n" }
    FNR == 1 { next }
    {
      if (!valid_date(cell(1)) || cell(3) !~ /^-?[0-9]+\.[0-9][0-9]$/) next
      printf "%s|%s|%d|%s|%s|%s|%d|%s|%s|%s|%s\n", body, cell(2), cell(9), cell(7), cell(5),
        substr(cell(1), 1, 7), pence(cell(3)), flag(cell(8)), flag(cell(10)), cell(4), cell(6)
    }' "$2"
}
{
  to_records GB-LAE-BNS "$WORK/in/council-1.csv"
  to_records GB-LAE-BNS "$WORK/in/council-2.csv"
  to_records GB-POL-SY "$WORK/in/police.csv"
  to_records GB-DWP "$WORK/in/dwp.csv"
} >"$WORK/records"
SOURCES=("--collector=$QUERY" "--db=$WORK/collector")
# shellcheck source=cli_checks.sh
source "$(dirname "$0")/cli_checks.sh"
model_apply <"$WORK/records"
IFS='|' read -r n_accepted n_duplicate n_superseded n_stale n_rejected n_stored <"$WORK/counters"
((n_duplicate > 0 && n_superseded > 0 && n_stale > 0 && n_rejected > 0)) ||
  fail "the input no longer exercises every outcome"
if grep -qE '^[^|]*\|(T-0005|P 103|D-3)\|' "$WORK/records"; then
  fail "model: a row the agent rejects reached the model"
fi

# ---------------------------------------------------------------- every command, both ways
[[ $(ranked_model | wc -l) -eq 4 ]] || fail "model: expected 4 live neighbourhoods (E01000003 withdrawn)"
check_neighbourhoods
note "neighbourhoods: table, csv, json agree through the endpoint and the store"

check_totals "" "" "" "" "" "" ""
for by in body service fiscal-year month poolable neighbourhood; do
  check_totals E01000001 "$by" "" "" "" "" ""
  check_totals "" "$by" "" "" "" "" ""
done
check_totals E01000001 month 2013-14 "" "" "" ""
check_totals "" service "" "" GB-LAE-BNS "" yes
check_totals "" body "" "" "" "" no
check_totals "" neighbourhood 2014-15 "" "" "" ""
check_totals E01000001 body "" 2013-04 "" 'Adult social care, "older" people' ""
check_totals E01000002 "" "" "" "" "" no
check_totals E01000001 "" 1999-00 "" "" "" ""
note "totals: every breakdown and filter agree"

[[ -n $(pooling_expected E01000002 E01000004 | awk -F'|' '$3 <= 0') ]] ||
  fail "model: the input no longer has a zero or negative total (share n/a)"
check_all_pooling
note "pooling agrees"

check_record GB-LAE-BNS T-0001
check_record GB-LAE-BNS T-0002
check_record GB-LAE-BNS T-0004
check_record GB-LAE-BNS T-0006
check_record GB-POL-SY "P 100"
check_record GB-DWP D-2
note "records agree"

# ---------------------------------------------------------------- stats
# The store's part is the same both ways; through the endpoint the collector's counters follow.
ask_one() { timeout 30 "$cli" "$@" || fail "totalplace $* exited $?"; }
for format in table csv json; do
  ask_one --db "$WORK/collector" --format "$format" stats >"$WORK/stats-db.$format"
  ask_one --collector "$QUERY" --format "$format" stats >"$WORK/stats-collector.$format"
done
lines=$(wc -l <"$WORK/stats-db.table")
head -n "$lines" "$WORK/stats-collector.table" | cmp -s - "$WORK/stats-db.table" ||
  fail "stats table: the store's part differs between --collector and --db: $(diff "$WORK/stats-db.table" "$WORK/stats-collector.table")"
lines=$(wc -l <"$WORK/stats-db.csv")
head -n "$lines" "$WORK/stats-collector.csv" | cmp -s - "$WORK/stats-db.csv" ||
  fail "stats csv: the store's part differs between --collector and --db"
same "stats json without the collector's counters" "$(jq -S . "$WORK/stats-db.json")" \
  "$(jq -S 'del(.ingest, .queries)' "$WORK/stats-collector.json")"
grep -qx "ingest" "$WORK/stats-collector.table" || fail "stats table through the endpoint has no ingest section"
grep -qx "queries" "$WORK/stats-collector.table" || fail "stats table through the endpoint has no queries section"

json=$(cat "$WORK/stats-collector.json")
same "stats: records stored, accepted, superseded, rejected" \
  "$n_stored|$n_accepted|$n_superseded|$n_rejected" \
  "$(jq -r '.counters | "\(.records_stored)|\(.accepted)|\(.superseded)|\(.rejected)"' <<<"$json")"
# A batch re-sent after a lost ack comes back as duplicates or stale copies, never fewer.
jq -e --argjson d "$n_duplicate" --argjson s "$n_stale" \
  '.counters.duplicate >= $d and .counters.stale >= $s' >/dev/null <<<"$json" ||
  fail "stats: fewer duplicates or stale copies than the files hold: $json"
# Each agent's last batch is the number of batches it queued (its logs say how many).
for agent in council police dwp; do
  queued=$({ grep -oE 'in [0-9]+ batch(es)? queued' "$WORK/$agent.log" || true; } | gawk '{ n += $2 } END { print n + 0 }')
  ((queued > 0)) || fail "agent $agent logged no queued batches"
  same "stats: last batch of $agent" "$queued" \
    "$(jq -r --arg a "$agent" '.agents[] | select(.agent_id == $a) | .last_batch_seq' <<<"$json")"
done
same "stats: agents" "council
dwp
police" "$(jq -r '.agents[].agent_id' <<<"$json")"
# Since the collector started, its ingest server applied every batch the store counts, and the
# records in them; nothing malformed has arrived yet.
jq -e '.ingest.batches == .counters.batches and
  .ingest.records == (.counters.accepted + .counters.duplicate + .counters.superseded + .counters.stale + .counters.rejected) and
  .ingest.malformed == 0 and .ingest.frames >= .ingest.batches and .ingest.groups >= 1 and
  .ingest.connections >= 3 and .queries.queries >= 1 and .queries.bad_queries == 0 and
  .queries.errors == 0' >/dev/null <<<"$json" || fail "stats: collector counters: $json"
note "stats: store counters agree, collector counters consistent"

# ---------------------------------------------------------------- errors, both ways
# expect_failure STATUS TEXT ARGS...: exits STATUS (no hang), stderr names TEXT, stdout empty.
expect_failure() {
  local want=$1 text=$2 status=0
  shift 2
  timeout 30 "$cli" "$@" >"$WORK/stdout" 2>"$WORK/stderr" || status=$?
  ((status == want)) || fail "totalplace $*: exit $status, expected $want ($(cat "$WORK/stderr"))"
  grep -qF -- "$text" "$WORK/stderr" || fail "totalplace $*: stderr lacks \"$text\": $(cat "$WORK/stderr")"
  [[ ! -s $WORK/stdout ]] || fail "totalplace $*: wrote to stdout on failure"
}
for source in "--collector=$QUERY" "--db=$WORK/collector"; do
  expect_failure 1 "neighbourhood E09999999 has no records in this store" "$source" totals --neighbourhood E09999999
  cp "$WORK/stderr" "$WORK/stderr.${source%%=*}"
  expect_failure 1 "E01000003" "$source" pooling --neighbourhood E01000003 --format json # withdrawn
  expect_failure 1 "GB-LAE-BNS/T-9999" "$source" record GB-LAE-BNS T-9999
done
cmp -s "$WORK/stderr.--collector" "$WORK/stderr.--db" || fail "an unknown neighbourhood is reported differently"
expect_failure 2 "either --db or --collector" --db "$WORK/collector" --collector "$QUERY" stats
note "unknown neighbourhoods and records: exit 1, the same message both ways"

# ---------------------------------------------------------------- hostile frames
"$RAW" "$QUERY" --garbage >"$WORK/raw.out" || fail "tp_query_raw --garbage got no reply"
grep -q 'status=BAD_QUERY error="64 bytes are not a valid' "$WORK/raw.out" || fail "garbage: $(cat "$WORK/raw.out")"
"$RAW" "$QUERY" --frames 3 >"$WORK/raw.out" || fail "tp_query_raw --frames 3 got no reply"
grep -q 'status=BAD_QUERY error=".*got 3 frames' "$WORK/raw.out" || fail "three frames: $(cat "$WORK/raw.out")"
"$RAW" "$QUERY" --oversize >"$WORK/raw.out" || fail "tp_query_raw --oversize got no reply"
grep -q 'status=BAD_QUERY error="message of 16385 bytes is over the limit' "$WORK/raw.out" ||
  fail "oversize: $(cat "$WORK/raw.out")"
status=0
"$RAW" "$QUERY" --huge --timeout 1000 >"$WORK/raw.out" 2>&1 || status=$?
((status == 2)) || fail "a frame over the socket limit was answered (exit $status): $(cat "$WORK/raw.out")"
"$RAW" "$QUERY" --req >"$WORK/raw.out" || fail "a REQ client got no reply"
grep -q 'reply query_id=7 status=OK' "$WORK/raw.out" || fail "REQ: $(cat "$WORK/raw.out")"
ask_one --collector "$QUERY" --format json stats >"$WORK/stats.json"
jq -e '.queries.bad_queries == 3' >/dev/null "$WORK/stats.json" ||
  fail "bad queries not counted: $(jq -c .queries "$WORK/stats.json")"
check_totals E01000001 body "" "" "" "" ""
note "hostile frames answered BAD_QUERY (or dropped) and counted; the collector still answers"

# ---------------------------------------------------------------- no collector, or a frozen one
started=$(date +%s%N)
expect_failure 1 "no answer from ipc://$WORK/nobody.sock within 700 ms" \
  --collector "ipc://$WORK/nobody.sock" --timeout 700 stats
elapsed=$((($(date +%s%N) - started) / 1000000))
((elapsed >= 650 && elapsed < 5000)) || fail "--timeout 700 took $elapsed ms"
started=$(date +%s%N)
expect_failure 1 "is the collector running" --collector "ipc://$WORK/nobody.sock" neighbourhoods
elapsed=$((($(date +%s%N) - started) / 1000000))
((elapsed >= 4900 && elapsed < 9000)) || fail "the default timeout (5000 ms) took $elapsed ms"
# A collector that is there but does not answer (stopped with SIGSTOP).
kill -STOP "${PIDS[collector]}"
started=$(date +%s%N)
status=0
timeout 30 "$cli" --collector "$QUERY" --timeout 1000 pooling >"$WORK/stdout" 2>"$WORK/stderr" || status=$?
elapsed=$((($(date +%s%N) - started) / 1000000))
kill -CONT "${PIDS[collector]}"
((status == 1)) || fail "a frozen collector: exit $status ($(cat "$WORK/stderr"))"
grep -qF "no answer from $QUERY within 1000 ms" "$WORK/stderr" || fail "a frozen collector: $(cat "$WORK/stderr")"
((elapsed < 5000)) || fail "a frozen collector held the CLI for $elapsed ms"
check_neighbourhoods
note "an absent or frozen collector: exit 1 within the timeout; the thawed one answers"

stop collector || fail "the collector did not stop cleanly"
grep -q "queries on $QUERY" "$WORK/collector.log" || fail "the collector's first line does not name the query endpoint"
echo "test_query_endpoint: all checks passed"
