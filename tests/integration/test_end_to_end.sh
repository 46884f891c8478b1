# End to end, real processes: three agents deliver several thousand rows (with repeated rows,
# corrections in a later file and withdrawals) to a collector; its totals must equal totals
# computed independently from the CSV files. The same file dropped twice counts once.
source "$(dirname "$0")/lib.sh"
bash "$SRC/tests/integration/make_exports.sh" "$WORK/csv" 1500 7
BODIES="GB-LAE-BNS GB-NHS-RFF GB-PF-SYP"

start_collector
drop council "$WORK/csv/council.csv"
drop nhs "$WORK/csv/nhs.csv"
drop police "$WORK/csv/police.csv"
drain_agent council GB-LAE-BNS & a=$!
drain_agent nhs GB-NHS-RFF & b=$!
drain_agent police GB-PF-SYP & c=$!
wait $a && wait $b && wait $c
check_totals "$BODIES" "$WORK/csv/council.csv" "$WORK/csv/nhs.csv" "$WORK/csv/police.csv"
before=$(cat "$WORK/actual.txt")

note "the same file dropped again changes nothing"
drop council "$WORK/csv/council.csv" council-again.csv
drain_agent council GB-LAE-BNS
[[ -f $WORK/council/inbox/done/council-again.csv ]] || fail "the repeated file was not processed"
actual | sort >"$WORK/again.txt"
[[ $(cat "$WORK/again.txt") == "$before" ]] || fail "dropping the same file twice changed the totals"

note "a file of corrections replaces the originals"
drop council "$WORK/csv/corrections.csv"
drain_agent council GB-LAE-BNS
check_totals "$BODIES GB-LAE-BNS" "$WORK/csv/council.csv" "$WORK/csv/nhs.csv" \
  "$WORK/csv/police.csv" "$WORK/csv/corrections.csv"
[[ $(cat "$WORK/actual.txt") != "$before" ]] || fail "the corrections changed nothing"

stop collector TERM || fail "collector did not exit 0 on SIGTERM"
grep -q "stopped" "$WORK/collector.log" || fail "collector did not log a clean stop"
echo "1 passed, 0 failed"
