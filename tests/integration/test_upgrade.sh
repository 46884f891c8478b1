#!/usr/bin/env bash
# test_upgrade: `totalplace-collector upgrade` turns a store of format 1 into the current format.
# Three agents deliver exports with repeated rows, corrections and withdrawals to the real
# collector; its store is written back as format 1 (tests/tools/tp_format1: the same records,
# marks, counters, identity and totals, in the old layout). The collector and the CLI refuse that
# store (78) naming the command; upgrade refuses a store in use; then it upgrades: the store has
# its id, records, agents' marks and counters, and totals equal to the reference computed from the
# CSV files; it verifies clean; the old store is kept, unchanged; a second upgrade has nothing to
# do; the collector runs on the new store and takes the agents' next files, exactly.
source "$(dirname "$0")/lib.sh"

FORMAT1=$BIN/tests/tp_format1
[[ -x $FORMAT1 ]] || fail "tp_format1 must be built"
bash "$SRC/tests/integration/make_exports.sh" "$WORK/csv" 1200 11
BODIES="GB-LAE-BNS GB-NHS-RFF GB-PF-SYP"

start_collector
drop council "$WORK/csv/council.csv"
drop nhs "$WORK/csv/nhs.csv"
drop police "$WORK/csv/police.csv"
drain_agent council GB-LAE-BNS & a=$!
drain_agent nhs GB-NHS-RFF & b=$!
drain_agent police GB-PF-SYP & c=$!
wait $a && wait $b && wait $c
drop council "$WORK/csv/corrections.csv"
drain_agent council GB-LAE-BNS
FILES=("$WORK/csv/council.csv" "$WORK/csv/nhs.csv" "$WORK/csv/police.csv" "$WORK/csv/corrections.csv")
check_totals "$BODIES GB-LAE-BNS" "${FILES[@]}"
reference=$(cat "$WORK/actual.txt")

# upgrade refuses a store a running collector has open, and changes nothing.
status=0
"$COLLECTOR" upgrade --state-dir "$WORK/collector" >"$WORK/busy.out" 2>"$WORK/busy.err" || status=$?
((status == 1)) || fail "upgrade of a store in use: exit $status, expected 1: $(cat "$WORK/busy.err")"
grep -qF "is in use by another process" "$WORK/busy.err" || fail "upgrade of a store in use: $(cat "$WORK/busy.err")"
stop collector || fail "the collector did not stop cleanly"

# What the store says about itself, to compare after the upgrade.
describe() { # describe DIR: identity, counters and agents (last seen included), as CSV
  "$CLI" --db "$1" --format csv stats | gawk -F, '$1 != "" && $0 !~ /^(map|used)/' |
    gawk -F, 'BEGIN { OFS = "," } /^batches,/ { h = NR } h && NR == h + 1 { NF = 7 } { print }'
}
describe "$WORK/collector" >"$WORK/before.stats"
record_before=$("$CLI" --db "$WORK/collector" --format csv record GB-LAE-BNS "$(sed -n 2p "$WORK/csv/council.csv" | cut -d, -f2)")

# ---------------------------------------------------------------- a format 1 store
"$FORMAT1" "$WORK/collector" "$WORK/old" || fail "tp_format1 failed"
rm -f "$WORK/old/lock.mdb"
old_sum=$(sha256sum <"$WORK/old/data.mdb")
status=0
"$COLLECTOR" --state-dir "$WORK/old" --ingest "ipc://$WORK/old.sock" --query "" --allow-plain \
  >"$WORK/refused.log" 2>&1 || status=$?
((status == 78)) || fail "collector on a format 1 store: exit $status, expected 78: $(cat "$WORK/refused.log")"
grep -qF "is of format 1, and this totalplace uses format 2: stop the collector and run \`totalplace-collector upgrade --state-dir $WORK/old\`" "$WORK/refused.log" ||
  fail "the refusal does not name the upgrade: $(cat "$WORK/refused.log")"
status=0
"$CLI" --db "$WORK/old" stats >/dev/null 2>"$WORK/refused.err" || status=$?
((status == 78)) || fail "totalplace --db on a format 1 store: exit $status, expected 78"
grep -qF "totalplace-collector upgrade --state-dir $WORK/old" "$WORK/refused.err" || fail "the CLI does not name the upgrade: $(cat "$WORK/refused.err")"

# A damaged format 1 store (counters without their checksum) is refused, and left as it was.
cp -r "$WORK/old" "$WORK/damaged"
"$BIN/tests/tp_store_meta" --raw "$WORK/damaged" counters broken || fail "tp_store_meta failed"
damaged_sum=$(sha256sum <"$WORK/damaged/data.mdb")
status=0
"$COLLECTOR" upgrade --state-dir "$WORK/damaged" 2>"$WORK/damaged.err" || status=$?
((status == 65)) || fail "upgrade of a damaged store: exit $status, expected 65: $(cat "$WORK/damaged.err")"
grep -qF "the value of key \"counters\" in database \"meta\" fails its checksum or has the wrong size; nothing was changed" "$WORK/damaged.err" ||
  fail "upgrade of a damaged store: $(cat "$WORK/damaged.err")"
[[ $(sha256sum <"$WORK/damaged/data.mdb") == "$damaged_sum" && $(ls -A "$WORK/damaged") == data.mdb* ]] ||
  fail "a refused upgrade changed the store or left something: $(ls -A "$WORK/damaged")"

# ---------------------------------------------------------------- the upgrade
"${RUN[@]}" "$COLLECTOR" upgrade --state-dir "$WORK/old" >"$WORK/upgrade.out" 2>"$WORK/upgrade.err" ||
  fail "upgrade failed: $(cat "$WORK/upgrade.err")"
note "$(tail -n 1 "$WORK/upgrade.err")"
records=$(stored_records)
grep -qE "upgraded the store in $WORK/old \(store id $(cat "$WORK/store-id")\) to format 2 in [0-9.]+ s: $records records, 3 agents" "$WORK/upgrade.err" ||
  fail "upgrade did not report the store, its records and agents: $(cat "$WORK/upgrade.err")"
kept=$(ls -d "$WORK"/old/format-1-*)
[[ -d $kept && $(sha256sum <"$kept/data.mdb") == "$old_sum" ]] || fail "the format 1 store was not kept unchanged in $kept"
[[ -z $(ls -a "$WORK/old" | grep -E '^\.upgrade|^\.init') ]] || fail "upgrade left its work folder behind: $(ls -a "$WORK/old")"

describe "$WORK/old" >"$WORK/after.stats"
diff -u "$WORK/before.stats" "$WORK/after.stats" >&2 || fail "the upgraded store's identity, counters or agents differ"
grep -q '^[0-9a-f]\{32\},2,' "$WORK/after.stats" || fail "the upgraded store is not of format 2: $(head -n 3 "$WORK/after.stats")"
[[ $("$CLI" --db "$WORK/old" --format csv record GB-LAE-BNS "$(sed -n 2p "$WORK/csv/council.csv" | cut -d, -f2)") == "$record_before" ]] ||
  fail "a record reads otherwise after the upgrade"
"$CLI" --db "$WORK/old" verify >"$WORK/verify.out" || fail "the upgraded store does not verify: $(cat "$WORK/verify.out")"
mv "$WORK/collector" "$WORK/original"
mv "$WORK/old" "$WORK/collector"
check_totals "$BODIES GB-LAE-BNS" "${FILES[@]}"
[[ $(cat "$WORK/actual.txt") == "$reference" ]] || fail "the totals changed"

# Once is enough: a second upgrade finds nothing to do.
"$COLLECTOR" upgrade --state-dir "$WORK/collector" 2>"$WORK/again.err" || fail "a second upgrade failed: $(cat "$WORK/again.err")"
grep -qF "is of format 2 already: nothing to do" "$WORK/again.err" || fail "a second upgrade: $(cat "$WORK/again.err")"

# ---------------------------------------------------------------- life goes on
bash "$SRC/tests/integration/make_exports.sh" "$WORK/next" 300 12
sed -i 's/,NHS\([0-9]\)/,NHX\1/' "$WORK/next/nhs.csv" # new transactions, not corrections
start_collector
drop nhs "$WORK/next/nhs.csv" nhs-next.csv
drop council "$WORK/csv/council.csv" council-again.csv
drain_agent nhs GB-NHS-RFF
drain_agent council GB-LAE-BNS
stop collector || fail "the collector did not stop cleanly on the upgraded store"
check_totals "$BODIES GB-LAE-BNS GB-NHS-RFF" "${FILES[@]}" "$WORK/next/nhs.csv"
"$CLI" --db "$WORK/collector" verify >"$WORK/verify2.out" || fail "the store does not verify after more deliveries"
echo "1 passed, 0 failed"
