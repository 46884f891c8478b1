#!/usr/bin/env bash
# test_cli_db: makes a store with `totalplace-collector init`, fills it with tp_fill from two batches of records (duplicates, corrections, a
# stale copy, a conflict, a withdrawal, an invalid period, credits, commas and quotes in text), then
# runs the real `totalplace --db` for every subcommand in table, CSV and JSON and compares each
# answer with totals computed here, independently, by awk from the same input lines.
set -euo pipefail

fail() {
  echo "test_cli_db: FAIL: $*" >&2
  exit 1
}

: "${TOTALPLACE_BIN:?set TOTALPLACE_BIN to the build folder}"
cli=$TOTALPLACE_BIN/collector/totalplace
collector=$TOTALPLACE_BIN/collector/totalplace-collector
fill=$TOTALPLACE_BIN/tests/tp_fill
[[ -x $cli ]] || fail "no totalplace binary at $cli"
[[ -x $collector ]] || fail "no totalplace-collector binary at $collector"
[[ -x $fill ]] || fail "no tp_fill at $fill"
command -v jq >/dev/null || fail "jq is required to read the JSON answers (apt-get install jq)"
export LC_ALL=C

base=${TOTALPLACE_TEST_TMP:-/tmp}
mkdir -p "$base"
work=$(mktemp -d "$base/test_cli_db.XXXXXX")
trap 'rm -rf "$work"' EXIT
store=$work/store
started=$(date -u +%s)
store_id=$("$collector" init --state-dir "$store" 2>/dev/null) || fail "init of $store failed"
[[ $store_id =~ ^[0-9a-f]{32}$ ]] || fail "init printed \"$store_id\", not a store id"

# ---------------------------------------------------------------- the input
# body|record|revision|neighbourhood|service|period|amount_pence|poolable|withdrawn|supplier|description
cat >"$work/batch1" <<'EOF'
GB-LAE-BNS|T-0001|1|E01000001|Adult social care, "older" people|2013-04|123456789|y|n|ACME, Ltd|Day care
GB-LAE-BNS|T-0002|1|E01000001|Housing|2014-03|-1200|n|n|Council Homes|Refund
GB-LAE-BNS|T-0003|1|E01000002|Housing|2014-04|50000|y|n||
GB-LAE-BNS|T-0004|1|E01000003|Libraries|2013-03|700|n|n||
GB-LAE-BNS|T-0001|1|E01000001|Adult social care, "older" people|2013-04|123456789|y|n|ACME, Ltd|Day care
GB-LAE-BNS|T-0005|1|E01000001|Housing|2013-13|100|n|n||
GB-LAE-BNS|T-0006|1|E01000001|Housing|2013-06|99|y|n||
EOF
cat >"$work/batch2" <<'EOF'
GB-POL-SY|P 100|1|E01000001|Policing|2013-05|2500000|y|n|South Yorkshire Police|Patrols
GB-POL-SY|P 101|1|E01000002|Policing|2013-12|-75000|n|n||Credit
GB-LAE-BNS|T-0002|2|E01000001|Housing|2014-03|-1500|n|n|Council Homes|Refund, corrected
GB-LAE-BNS|T-0002|1|E01000001|Housing|2014-03|-1200|n|n|Council Homes|Refund
GB-LAE-BNS|T-0004|2|E01000003|Libraries|2013-03|700|n|y||
GB-POL-SY|P 100|1|E01000001|Policing|2013-05|2500001|y|n|South Yorkshire Police|Patrols
GB-DWP|D-1|1|E01000004|Employment support|2015-01|10000|y|n||
GB-DWP|D-2|1|E01000004|Employment support|2015-02|-10000|n|n||
GB-POL-SY|P 102|1|E01000001|Policing|2014-04|1|n|n||
EOF

"$fill" --agent agent-bns --seq 7 "$store" <"$work/batch1" >"$work/outcomes1" ||
  fail "tp_fill batch 1 failed"
"$fill" --agent agent-pol --seq 3 "$store" <"$work/batch2" >"$work/outcomes2" ||
  fail "tp_fill batch 2 failed"

# ---------------------------------------------------------------- the model
SOURCES=("--db=$store")
# shellcheck source=cli_checks.sh
source "$(dirname "$0")/cli_checks.sh"
cat "$work/batch1" "$work/batch2" | model_apply

# The outcomes tp_fill reported must be the model's (this checks the model as much as the store).
expected_outcomes=$(cat "$work/model_outcomes")
actual_outcomes=$(cat "$work/outcomes1" "$work/outcomes2" | awk '{ print $2 }')
[[ $expected_outcomes == "$actual_outcomes" ]] ||
  fail "store outcomes differ from the model: $(diff <(echo "$expected_outcomes") <(echo "$actual_outcomes"))"
IFS='|' read -r n_accepted n_duplicate n_superseded n_stale n_rejected n_stored <"$work/counters"
((n_duplicate > 0 && n_superseded > 0 && n_stale > 0 && n_rejected > 1)) ||
  fail "the input no longer exercises every outcome"

# Runs the CLI (never allowed to hang) and fails unless it exits 0.
run() {
  local out
  out=$(timeout 30 "$cli" "$@") || fail "totalplace $* exited $?"
  printf '%s\n' "$out"
}

# ---------------------------------------------------------------- neighbourhoods, totals, pooling, record
[[ $(ranked_model | wc -l) -eq 3 ]] || fail "model: expected 3 live neighbourhoods"
check_neighbourhoods
# Global options may come before or after the command.
same "--db before the command" "$(run neighbourhoods --db "$store")" "$(run --db "$store" neighbourhoods)"

check_totals "" "" "" "" "" "" ""
check_totals E01000001 "" "" "" "" "" ""
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
# Filters that match nothing: one zero row without --by.
check_totals E01000001 "" 1999-00 "" "" "" ""

[[ -n $(pooling_expected E01000001 E01000002 E01000004 | awk -F'|' '$3 <= 0') ]] ||
  fail "model: the input no longer has a zero or negative total (share n/a)"
check_all_pooling

check_record GB-LAE-BNS T-0001
check_record GB-LAE-BNS T-0002
check_record GB-LAE-BNS T-0004
check_record GB-POL-SY "P 100"
check_record GB-DWP D-2

# ---------------------------------------------------------------- stats
now=$(date -u +%s)
out=$(run --db "$store" stats)
expected="batches|2
accepted|$n_accepted
duplicate|$n_duplicate
superseded|$n_superseded
stale|$n_stale
rejected|$n_rejected
records stored|$n_stored"
same "stats table identity" "store id|$store_id
format|2" "$(sed -n '3,4p' <<<"$out" | sed -E 's/ {2,}/|/g')"
same "stats table counters" "$expected" "$(sed -n '8,14p' <<<"$out" | sed -E 's/ {2,}/|/g')"
same "stats table agents header" "agent|last batch|batches|last seen (UTC)" \
  "$(sed -n '19p' <<<"$out" | sed -E 's/ {2,}/|/g')"
agents_table=$(sed -n '21,$p' <<<"$out" | sed -E 's/ {2,}/|/g')
same "stats table agents" "agent-bns|7|1
agent-pol|3|1" "$(cut -d'|' -f1-3 <<<"$agents_table")"

json=$(run --db "$store" stats --format json)
same "stats json identity" "$store_id|2" "$(jq -r '.store | "\(.store_id)|\(.format)"' <<<"$json")"
created=$(date -u -d "$(jq -r '.store.created' <<<"$json")" +%s) || fail "stats: created is not a time"
((created >= started - 1 && created <= $(date -u +%s) + 1)) || fail "stats: the store was not created at init"
same "stats table created" "created (UTC)|$(jq -r '.store.created' <<<"$json")" \
  "$(sed -n '5p' <<<"$out" | sed -E 's/ {2,}/|/g')"
same "stats json counters" "2|$n_accepted|$n_duplicate|$n_superseded|$n_stale|$n_rejected|$n_stored" \
  "$(jq -r '.counters | "\(.batches)|\(.accepted)|\(.duplicate)|\(.superseded)|\(.stale)|\(.rejected)|\(.records_stored)"' <<<"$json")"
jq -e '.query == "stats" and .counters.used_bytes > 0 and .counters.used_bytes <= .counters.map_size_bytes' \
  >/dev/null <<<"$json" || fail "stats json: used bytes must be within the map: $json"
same "stats json agents" "agent-bns|7|1
agent-pol|3|1" "$(jq -r '.agents[] | "\(.agent_id)|\(.last_batch_seq)|\(.batches)"' <<<"$json")"
while read -r seen; do
  [[ $seen =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] ||
    fail "stats: last seen \"$seen\" is not ISO 8601 UTC"
  t=$(date -u -d "$seen" +%s)
  ((t >= started - 1 && t <= now + 1)) || fail "stats: last seen $seen is not the time of the fill"
done < <(jq -r '.agents[].last_seen' <<<"$json")
same "stats table last seen" "$(jq -r '.agents[].last_seen' <<<"$json")" "$(cut -d'|' -f4 <<<"$agents_table")"

csv=$(csv_of stats)
same "stats csv identity" "store id,format,created (UTC)
$store_id,2,$(jq -r '.store.created' <<<"$json")" "$(sed -n 1,2p <<<"$csv")"
same "stats csv counters header" \
  "batches,accepted,duplicate,superseded,stale,rejected,records stored,map size (bytes),used (bytes)" \
  "$(sed -n 4p <<<"$csv")"
same "stats csv counters" "2,$n_accepted,$n_duplicate,$n_superseded,$n_stale,$n_rejected,$n_stored" \
  "$(sed -n 5p <<<"$csv" | cut -d, -f1-7)"
same "stats csv map" "$(jq -r '.counters | "\(.map_size_bytes),\(.used_bytes)"' <<<"$json")" \
  "$(sed -n 5p <<<"$csv" | cut -d, -f8-9)"
same "stats csv agents" "
agent,last batch,batches,last seen (UTC)
$(jq -r '.agents[] | "\(.agent_id),\(.last_batch_seq),\(.batches),\(.last_seen)"' <<<"$json")" \
  "$(sed -n '6,$p' <<<"$csv")"

# ---------------------------------------------------------------- errors
# expect_failure STATUS TEXT ARGS...: exits STATUS (no hang), stderr names TEXT, stdout empty.
expect_failure() {
  local want=$1 text=$2 status=0
  shift 2
  timeout 30 "$cli" "$@" >"$work/stdout" 2>"$work/stderr" || status=$?
  ((status == want)) || fail "totalplace $*: exit $status, expected $want ($(cat "$work/stderr"))"
  grep -qF -- "$text" "$work/stderr" || fail "totalplace $*: stderr lacks \"$text\": $(cat "$work/stderr")"
  [[ ! -s $work/stdout ]] || fail "totalplace $*: wrote to stdout on failure"
}
mkdir "$work/empty"
echo "not lmdb" >"$work/junk.mdb"
mkdir "$work/junk" && cp "$work/junk.mdb" "$work/junk/data.mdb"
expect_failure 1 "E09999999" --db "$store" totals --neighbourhood E09999999
expect_failure 1 "E09999999" --db "$store" pooling --neighbourhood E09999999 --format json
expect_failure 1 "E01000003" --db "$store" totals --neighbourhood E01000003 # all withdrawn
expect_failure 1 "GB-LAE-BNS/T-9999" --db "$store" record GB-LAE-BNS T-9999
# A folder without a store is a configuration error (78), a data.mdb that is not LMDB's a data
# error (65): test_store_refusal.sh tries every kind of damage.
expect_failure 78 "no store in $work/empty (it holds no data.mdb)" --db "$work/empty" stats
expect_failure 65 "is not an LMDB file" --db "$work/junk" neighbourhoods
expect_failure 78 "(it is not a folder)" --db "$work/junk.mdb" neighbourhoods
expect_failure 78 "(the folder does not exist)" --db "$work/missing" neighbourhoods
expect_failure 2 "Usage" neighbourhoods
expect_failure 2 "no store given" totals --by body
expect_failure 2 "Usage" --db "$store"
expect_failure 2 "unknown command" --db "$store" frobnicate
expect_failure 2 "unknown option --frob" --db "$store" stats --frob
expect_failure 2 "--month 2013-13" --db "$store" totals --month 2013-13
expect_failure 2 "--fiscal-year 2013-15" --db "$store" totals --fiscal-year 2013-15
expect_failure 2 "--by colour" --db "$store" totals --by colour
expect_failure 2 "names body twice" --db "$store" totals --by body,month,body
expect_failure 2 "at most 3 breakdowns" --db "$store" totals --by body,month,service,poolable
expect_failure 2 "--by body,," --db "$store" totals --by body,,
expect_failure 2 "either --neighbourhood or --place" --db "$store" totals --neighbourhood E01000001 --place X
expect_failure 2 "--place with --db needs --places FILE" --db "$store" totals --place X
expect_failure 2 "places with --db needs --places FILE" --db "$store" places
expect_failure 2 "--places applies only with --db" --collector tcp://127.0.0.1:1 --places x.csv places
expect_failure 2 "does not apply to places" --db "$store" --places x.csv places --place X
expect_failure 1 "x.csv: cannot open the places file" --db "$store" --places "$work/x.csv" places
expect_failure 2 "--poolable maybe" --db "$store" totals --poolable maybe
expect_failure 2 "--format xml" --db "$store" --format xml stats
expect_failure 2 "does not apply to pooling" --db "$store" pooling --by body
expect_failure 2 "does not apply to stats" --db "$store" stats --neighbourhood E01000001
expect_failure 2 "given twice" --db "$store" totals --body A --body B
expect_failure 2 "record needs 2 arguments" --db "$store" record GB-LAE-BNS
expect_failure 2 "takes no arguments" --db "$store" stats extra
expect_failure 2 "--collector" --collector bogus stats
expect_failure 2 "either --db or --collector" --db "$store" --collector tcp://127.0.0.1:1 stats
expect_failure 2 "--timeout applies only with --collector" --db "$store" --timeout 500 stats
expect_failure 2 "--timeout 0" --collector tcp://127.0.0.1:1 --timeout 0 stats
expect_failure 2 "--timeout 5s" --collector tcp://127.0.0.1:1 --timeout 5s stats
[[ -z $(ls -A "$work/empty") ]] || fail "opening a folder that is not a store wrote into it"

# Help and version answer on stdout with status 0.
# (Captured first: grep -q stops reading early, and under pipefail the writer's SIGPIPE would fail
# the check at random.)
help_of() { run "$@" >"$work/help.out" || fail "totalplace $* exited non-zero"; }
help_of --help && grep -q "^Usage: totalplace" "$work/help.out" || fail "--help lacks the usage"
help_of help && grep -q "pooling" "$work/help.out" || fail "help lacks the commands"
help_of help totals && grep -q -- "--fiscal-year" "$work/help.out" || fail "help totals lacks its options"
help_of pooling --help && grep -q -- "--neighbourhood" "$work/help.out" || fail "pooling --help lacks its options"
help_of --version && grep -qE "^totalplace [0-9]+\.[0-9]+\.[0-9]+$" "$work/help.out" || fail "--version"

# Read-only: nothing above changed the store's data.
sum_before=$(md5sum <"$store/data.mdb")
run --db "$store" pooling >/dev/null
run --db "$store" stats >/dev/null
[[ $(md5sum <"$store/data.mdb") == "$sum_before" ]] || fail "the CLI changed data.mdb"

echo "test_cli_db: all checks passed"
