# Published exports as councils really write them (make_published_exports.py): CRLF and the file's
# own totals row, a byte order mark, Windows-1252 bytes, invoice lines sharing a transaction
# number, the same header twice, a fiscal "Period" beside the real date, a header that changes
# between two quarters of one body. Every payment counts, or the file is held loudly and delivered
# once the config says how to read it; `inspect` says so first, in table and JSON; the totals equal
# an independent reference (reference_totals.py) to the penny, and re-dropping every file, or a
# re-issue with its rows shuffled and its dates and amounts written another way, changes nothing.
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || fail "python3 is needed (deploy/install-deps.sh installs it)"
DATA=$WORK/published
python3 "$SRC/tests/integration/make_published_exports.py" "$DATA" || fail "cannot make the exports"
start_collector

# inspect_json NAME FILE [OPTIONS...]: inspect's JSON for FILE, read as agent NAME reads; sets
# INSPECT_STATUS.
inspect_json() {
  local name=$1 file=$2; shift 2
  INSPECT_STATUS=0
  "$AGENT" --body "GB-LAE-${name^^}" "$@" --format json inspect "$file" >"$WORK/$name.inspect.json" \
    2>"$WORK/$name.inspect.err" || INSPECT_STATUS=$?
}
field() { jq -r "$1" "$WORK/$2.inspect.json"; }

# ---------------------------------------------------------------- the files, one body each
note "a raw export: CRLF and the file's own totals row"
inspect_json raw "$DATA/raw-crlf-totals.csv"
[[ $INSPECT_STATUS == 0 ]] || fail "inspect of the raw export exited $INSPECT_STATUS"
[[ $(field .file.verdict raw) == deliver && $(field .file.rows raw) == 300 && $(field .file.totals_rows raw) == 1 \
   && $(field .file.rejected_rows raw) == 0 ]] || fail "inspect misread the raw export: $(jq -c .file "$WORK/raw.inspect.json")"
total_line=$(tail -n 1 "$DATA/raw-crlf-totals.csv" | tr -d '\r' | gawk -F, '{ print $5 }')
[[ $(field .file.total_pence raw) == "${total_line/./}" ]] \
  || fail "inspect's file total $(field .file.total_pence raw) is not the council's own $total_line"
[[ $(field '.warnings[0].kind' raw) == "totals row" ]] || fail "the totals row is not a warning"
drop raw "$DATA/raw-crlf-totals.csv"
drain_agent raw GB-LAE-RAW
[[ ! -e $WORK/raw/inbox/done/raw-crlf-totals.rejects.csv ]] || fail "the clean raw export has rejects: $(cat "$WORK/raw/inbox/done/raw-crlf-totals.rejects.csv")"
grep -F "the file's own totals row ($total_line, the sum of the 300 other rows): skipped" \
  "$WORK/raw/inbox/done/raw-crlf-totals.warnings.csv" >/dev/null || fail "the totals row is not in the warnings file"

note "a UTF-8 byte order mark"
inspect_json bom "$DATA/bom.csv"
[[ $INSPECT_STATUS == 0 && $(field .file.rows bom) == 200 && $(field .file.rejected_rows bom) == 0 ]] \
  || fail "inspect misread the BOM file: $(jq -c .file "$WORK/bom.inspect.json")"
drop bom "$DATA/bom.csv"
drain_agent bom GB-LAE-BOM

note "Windows-1252 bytes: read as such, no payment refused for its supplier's bytes"
inspect_json win "$DATA/cp1252.csv"
[[ $INSPECT_STATUS == 0 && $(field .file.encoding win) == windows-1252 && $(field .file.rejected_rows win) == 0 ]] \
  || fail "inspect misread the Windows-1252 file: $(jq -c .file "$WORK/win.inspect.json")"
field '.notes[].text' win | grep -F "not valid UTF-8 (byte 0xA0 at offset" >/dev/null || fail "inspect does not say why it chose Windows-1252"
inspect_json win "$DATA/cp1252.csv" --set input/encoding=utf-8
[[ $INSPECT_STATUS == 0 && $(field .file.rejected_rows win) == 0 && $(field '.warnings[0].kind' win) == "bytes replaced" ]] \
  || fail "declared UTF-8, the Windows-1252 file lost rows or did not warn: $(jq -c '.file, .warnings' "$WORK/win.inspect.json")"
drop win "$DATA/cp1252.csv"
drain_agent win GB-LAE-WIN
id=$(sed -n 3p "$DATA/cp1252.csv" | cut -d, -f1)
want=$(sed -n 3p "$DATA/cp1252.csv" | iconv -f WINDOWS-1252 -t UTF-8 | python3 -c 'import csv,sys; print(next(csv.reader(sys.stdin))[3])')
[[ $("$CLI" --db "$WORK/collector" --format json record GB-LAE-WIN "$id" | jq -r .record.supplier) == "$want" ]] \
  || fail "record $id's supplier is not the Windows-1252 text in UTF-8 ($want)"

note "invoice lines sharing a transaction number: held by default, every line counted once configured"
inspect_json inv "$DATA/invoice-lines.csv"
[[ $INSPECT_STATUS == 1 && $(field .file.verdict inv) == hold ]] || fail "inspect did not hold the invoice lines (exit $INSPECT_STATUS)"
field '.notes[].text' inv | grep -F "set input/repeated_ids = lines" >/dev/null || fail "inspect's note does not name the setting"
(( $(field '.repeated_ids | length' inv) > 0 )) || fail "inspect lists no repeated ids"
"$AGENT" --body GB-LAE-INV inspect "$DATA/invoice-lines.csv" >"$WORK/inv.inspect.txt" && fail "inspect's table run exited 0 for a held file"
grep -E "^verdict +hold" "$WORK/inv.inspect.txt" >/dev/null || fail "inspect's table does not show the verdict"
grep -F "Record ids repeated with other content" "$WORK/inv.inspect.txt" >/dev/null || fail "inspect's table does not list repeated ids"
drop inv "$DATA/invoice-lines.csv"
status=$(drain_agent_status inv GB-LAE-INV)
[[ $status == 1 ]] || fail "the run that held the invoice lines exited $status, not 1"
grep -F "set input/repeated_ids = lines" "$WORK/inv/inbox/failed/invoice-lines.csv.error" >/dev/null \
  || fail "the held invoice lines' note does not name the setting"
[[ $(stored_records) == 700 ]] || fail "records of a held file reached the collector ($(stored_records) stored)"
INV=(--set input/repeated_ids=lines)
inspect_json inv "$DATA/invoice-lines.csv" "${INV[@]}"
[[ $INSPECT_STATUS == 0 && $(field .file.records inv) == $(($(wc -l <"$DATA/invoice-lines.csv") - 1)) ]] \
  || fail "with lines, inspect does not take every line: $(jq -c .file "$WORK/inv.inspect.json")"
mv "$WORK/inv/inbox/failed/invoice-lines.csv" "$WORK/inv/inbox/"
drain_agent inv GB-LAE-INV "${INV[@]}"

note "the same header twice: the first is read, and the agent says so"
inspect_json dup "$DATA/two-suppliers.csv"
[[ $INSPECT_STATUS == 0 ]] || fail "inspect held the file with two Supplier Name columns"
field '.notes[].text' dup | grep -F 'supplier: columns 4 and 7 are both headed "Supplier Name"; reading column 4 (set columns/supplier = #7' >/dev/null \
  || fail "inspect does not say which Supplier Name it reads: $(field '.notes' dup)"
drop dup "$DATA/two-suppliers.csv"
drain_agent dup GB-LAE-DUP
grep -E "^[^ ]+Z W .*two-suppliers.csv: supplier: columns 4 and 7" "$WORK/dup.log" >/dev/null || fail "the agent did not warn about the two headers"
id=$(sed -n 2p "$DATA/two-suppliers.csv" | cut -d, -f1)
want=$(sed -n 2p "$DATA/two-suppliers.csv" | python3 -c 'import csv,sys; print(next(csv.reader(sys.stdin))[3])')
[[ $("$CLI" --db "$WORK/collector" --format json record GB-LAE-DUP "$id" | jq -r .record.supplier) == "$want" ]] \
  || fail "record $id does not carry the first Supplier Name column"

note "a fiscal Period beside a date the defaults do not know: held, then read from the date"
inspect_json per "$DATA/period-and-date.csv"
[[ $INSPECT_STATUS == 1 ]] || fail "inspect did not hold the file read by its Period"
[[ $(field '.columns[] | select(.field == "period") | .read_from' per) == 'column 1 "Period"' ]] \
  || fail "inspect does not say the period is read from Period"
[[ $(field '.columns[] | select(.field == "period") | .other_candidates' per) == *'3 "Date Of Payment"'* ]] \
  || fail "inspect does not offer Date Of Payment as a candidate"
drop per "$DATA/period-and-date.csv"
[[ $(drain_agent_status per GB-LAE-PER) == 1 ]] || fail "the held Period file did not fail the run"
note_file=$WORK/per/inbox/failed/period-and-date.csv.error
for want in "250 of 250 rows (100%) would be rejected" 'period is read from column 1 "Period"' \
            '3 "Date Of Payment"' "columns/period = #3"; do
  grep -F "$want" "$note_file" >/dev/null || fail "the held file's note lacks: $want ($(cat "$note_file"))"
done
grep -E "^[^ ]+Z E .*period-and-date.csv: held" "$WORK/per.log" >/dev/null || fail "the held file was not an error line"
PER=(--set "columns/period=Date Of Payment")
mv "$WORK/per/inbox/failed/period-and-date.csv" "$WORK/per/inbox/"
drain_agent per GB-LAE-PER "${PER[@]}"

note "a header that changes between two quarters of one body: candidates in order"
QTR=(--set "columns/service=Organisational Unit, Organisatonal Unit")
inspect_json qtr "$DATA/quarter-4.csv"
[[ $INSPECT_STATUS == 1 ]] || fail "without candidates quarter 4 should be held (no service)"
inspect_json qtr "$DATA/quarter-4.csv" "${QTR[@]}"
[[ $INSPECT_STATUS == 0 ]] || fail "with candidates quarter 4 is still held"
drop qtr "$DATA/quarter-3.csv"
drop qtr "$DATA/quarter-4.csv"
drain_agent qtr GB-LAE-QTR "${QTR[@]}"

# ---------------------------------------------------------------- the totals
cat >"$WORK/spec.json" <<JSON
[
 {"path": "$DATA/raw-crlf-totals.csv", "body": "GB-LAE-RAW", "encoding": "utf-8", "id": "Transaction Number", "date": "Date", "amount": "Amount", "neighbourhood": "LSOA"},
 {"path": "$DATA/bom.csv", "body": "GB-LAE-BOM", "encoding": "utf-8-sig", "id": "Transaction Number", "date": "Date", "amount": "Amount", "neighbourhood": "LSOA"},
 {"path": "$DATA/cp1252.csv", "body": "GB-LAE-WIN", "encoding": "cp1252", "id": "Transaction Number", "date": "Date", "amount": "Amount", "neighbourhood": "LSOA"},
 {"path": "$DATA/invoice-lines.csv", "body": "GB-LAE-INV", "encoding": "utf-8", "id": "Transaction No.", "date": "Date", "amount": "Amount", "neighbourhood": "LSOA", "lines": true},
 {"path": "$DATA/two-suppliers.csv", "body": "GB-LAE-DUP", "encoding": "utf-8", "id": "Transaction Number", "date": "Date", "amount": "Amount", "neighbourhood": "LSOA"},
 {"path": "$DATA/period-and-date.csv", "body": "GB-LAE-PER", "encoding": "utf-8", "id": "Transaction Number", "date": "Date Of Payment", "amount": "Amount", "neighbourhood": "LSOA"},
 {"path": "$DATA/quarter-3.csv", "body": "GB-LAE-QTR", "encoding": "utf-8", "id": "Trans No", "date": "Paid Date", "amount": "Amount", "neighbourhood": "LSOA"},
 {"path": "$DATA/quarter-4.csv", "body": "GB-LAE-QTR", "encoding": "utf-8", "id": "trans_no", "date": "paid_date", "amount": "Net Value", "neighbourhood": "lsoa"}
]
JSON
python3 "$SRC/tests/integration/reference_totals.py" "$WORK/spec.json" | sort >"$WORK/expected.txt" \
  || fail "the reference could not read the files"
compare_with_reference() {
  actual | sort >"$WORK/actual.txt"
  diff -u "$WORK/expected.txt" "$WORK/actual.txt" >"$WORK/totals.diff" || {
    cat "$WORK/totals.diff" >&2
    fail "$1: the collector's totals differ from the reference"
  }
}
compare_with_reference "after delivery"
note "totals match the reference: $(grep -c '^total' "$WORK/expected.txt") neighbourhoods, $(grep '^grand' "$WORK/expected.txt")"
before=$(stored_records)

note "every file dropped again, and re-issued shuffled with dates and amounts written another way"
for pair in raw:raw-crlf-totals bom:bom win:cp1252 inv:invoice-lines dup:two-suppliers per:period-and-date qtr:quarter-3 qtr:quarter-4; do
  name=${pair%%:*} file=${pair#*:}
  drop "$name" "$DATA/$file.csv" "$file.again.csv"
  drop "$name" "$DATA/reissue/$file.csv" "$file.reissue.csv"
done
drain_agent raw GB-LAE-RAW
drain_agent bom GB-LAE-BOM
drain_agent win GB-LAE-WIN
drain_agent inv GB-LAE-INV "${INV[@]}"
drain_agent dup GB-LAE-DUP
drain_agent per GB-LAE-PER "${PER[@]}"
drain_agent qtr GB-LAE-QTR "${QTR[@]}"
compare_with_reference "after re-drops and re-issues"
[[ $(stored_records) == "$before" ]] || fail "re-drops added records: $before before, $(stored_records) after"
note "nothing changed: still $before records"

stop collector TERM || fail "collector did not exit 0 on SIGTERM"
echo "1 passed, 0 failed"
