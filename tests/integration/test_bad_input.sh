# Bad input, real processes: a CSV with bad rows delivers its good rows and keeps each bad row in
# the rejects file with its line and reason; garbage, oversized and giant frames sent to the
# ingest endpoint are answered or dropped, logged, and the collector keeps serving an agent.
source "$(dirname "$0")/lib.sh"
SEND=$BIN/tests/tp_send
[[ -x $SEND ]] || fail "$SEND is not built"
start_collector

note "a CSV with bad rows"
cat >"$WORK/mixed.csv" <<'CSV'
Date,Transaction Number,Amount,Supplier Name,Service Area,Neighbourhood
2013-04-01,T1,100.00,A,Housing,E01000001
2013-04-31,T2,200.00,A,Housing,E01000001
2013-05-01,T3,"£1,234.56",A,Housing,E01000002
2013-05-01,T4,12.345,A,Housing,E01000002
2013-05-01,,50.00,A,Housing,E01000002
2013-06-01,T6,(10.00),A,Housing,
2013-06-01,T7,(10.00),A,Housing,E01000001
CSV
drop council "$WORK/mixed.csv"
# More than half of its rows are bad: by default the file is held, nothing sent, and the run says so.
status=$(drain_agent_status council GB-LAE-BNS)
[[ $status == 1 ]] || fail "a run that held a file exited $status, not 1"
[[ -f $WORK/council/inbox/failed/mixed.csv ]] || fail "the held file is not in failed/"
note=$WORK/council/inbox/failed/mixed.csv.error
grep -F "4 of 7 rows (57%) would be rejected, more than input/max_rejected_percent (50%)" "$note" >/dev/null \
  || fail "the held file's note does not say why: $(cat "$note")"
[[ -f $WORK/council/inbox/failed/mixed.rejects.csv ]] || fail "the held file's rejects are not beside it"
grep -E "^[^ ]+Z E .*mixed.csv: held" "$WORK/council.log" >/dev/null || fail "the held file was not logged as an error"
[[ $(stored_records) == 0 ]] || fail "a held file sent records"
# Allowed to lose its bad rows, the same file delivers its good ones.
mv "$WORK/council/inbox/failed/mixed.csv" "$WORK/council/inbox/"
drain_agent council GB-LAE-BNS --set input/max_rejected_percent=100
rejects=$WORK/council/inbox/done/mixed.rejects.csv
[[ -f $rejects ]] || fail "no rejects file beside the processed file"
cat "$rejects"
[[ $(tail -n +2 "$rejects" | wc -l) -eq 4 ]] || fail "expected 4 rejected rows"
for expect in '3,.*period' '5,.*amount' '6,.*record_id' '7,.*neighbourhood'; do
  grep -Eq "^\"mixed.csv\",$expect" "$rejects" || fail "rejects file lacks line $expect"
done
check_totals "GB-LAE-BNS" "$WORK/mixed.csv"

note "a file the agent cannot read at all: the note in failed/ says everything, never cut short"
printf 'Payment Date,Amount\n2014-04-01,1.00\n' >"$WORK/bare.csv"
drop lookups "$WORK/bare.csv"
LOOKUPS=(--set neighbourhood/max_parts=8 --set "neighbourhood/lookup_file=$SRC/deploy/sample/lookups/council-units.csv"
         --set "neighbourhood/lookup_column=Organisational Unit, Org Unit, Cost Centre, Unit Name"
         --set "neighbourhood/postcode_file=$SRC/deploy/sample/lookups/postcodes-onspd.csv"
         --set "columns/supplier=Beneficiary, Payee, Supplier Name, Vendor")
[[ $(drain_agent_status lookups GB-LAE-LKP "${LOOKUPS[@]}") == 1 ]] || fail "an unreadable file did not fail the run"
bare_note=$WORK/lookups/inbox/failed/bare.csv.error
for want in 'no record_id column (accepted headers: "Transaction Number"' '"Trans Ref")' \
            'no column for supplier: none of "Beneficiary", "Payee", "Supplier Name", "Vendor" (columns/supplier) is in the header' \
            'no column "Organisational Unit", "Org Unit", "Cost Centre", "Unit Name", which the neighbourhood lookup reads (neighbourhood/lookup_column)' \
            '"LSOA11CD"), and no postcode column for the postcode lookup'; do
  grep -F "$want" "$bare_note" >/dev/null || fail "the note of an unreadable file lacks: $want ($(cat "$bare_note"))"
done
(( $(wc -c <"$bare_note") > 512 )) || fail "the note is short: a long one would show it whole"
grep -F "and no postcode column for the postcode lookup" "$WORK/lookups.log" >/dev/null || fail "the log line of the unreadable file was cut short"

note "garbage, an oversized frame, an extra frame and a giant frame at the ingest endpoint"
"$SEND" "$INGEST" --garbage >"$WORK/garbage.out" || true
grep -q 'status=MALFORMED' "$WORK/garbage.out" || fail "garbage got no MALFORMED ack: $(cat "$WORK/garbage.out")"
"$SEND" "$INGEST" --oversize >"$WORK/oversize.out" || true
grep -q 'status=MALFORMED' "$WORK/oversize.out" || fail "oversized frame got no MALFORMED ack"
"$SEND" "$INGEST" --extra-frame >"$WORK/extra.out" || true
grep -q 'status=MALFORMED' "$WORK/extra.out" || fail "a two-frame message got no MALFORMED ack"
"$SEND" "$INGEST" --huge --timeout 1000 >"$WORK/huge.out" 2>&1 && fail "a giant frame was acknowledged"
kill -0 "${PIDS[collector]}" || fail "the collector died"
grep -qi 'malformed\|not a valid' "$WORK/collector.log" || fail "the collector logged nothing about garbage"

note "a well-behaved agent still delivers, and a batch with one bad record keeps the rest"
"$SEND" "$INGEST" --agent good --body GB-TEST --records 10 --bad-record 3 --first-record 100 \
  --neighbourhood E01000009 --amount 250 >"$WORK/good.out"
grep -q 'accepted=9 .*rejected=1' "$WORK/good.out" || fail "expected 9 accepted and 1 rejected: $(cat "$WORK/good.out")"
drop police "$SRC/deploy/sample/police.csv"
drain_agent police GB-PF-SYP
"$CLI" --db "$WORK/collector" --format csv totals --neighbourhood E01000009 >"$WORK/t9.csv"
[[ $(sed -n 2p "$WORK/t9.csv" | tr -d "\r") == "22.50,9" ]] || fail "E01000009 should hold 9 records of £2.50: $(cat "$WORK/t9.csv")"
expected "GB-LAE-BNS GB-PF-SYP" "$WORK/mixed.csv" "$SRC/deploy/sample/police.csv" | grep '^grand' >"$WORK/grand.want"
read -r _ want_pence want_records <"$WORK/grand.want"
actual | grep '^grand' >"$WORK/grand.got"
read -r _ got_pence got_records <"$WORK/grand.got"
((got_pence == want_pence + 2250 && got_records == want_records + 9)) \
  || fail "grand total $got_pence/$got_records, expected $((want_pence + 2250))/$((want_records + 9))"
stop collector TERM || fail "collector did not exit 0 on SIGTERM"
echo "1 passed, 0 failed"
