#!/usr/bin/env bash
# test_places: real agents deliver sample CSVs to a real collector started with a places file
# (overlapping places, a member with no records, populations); place totals, per-resident figures
# (rounded half away from zero), --by neighbourhood,body rows and pooling for a place are asked
# through --collector and --db and compared with gawk computing them from the CSV files. Then a
# SIGHUP with a changed places file is seen, a bad one on reload keeps the old places, and a bad
# one at start stops the collector naming file:line.
source "$(dirname "$0")/lib.sh"
export LC_ALL=C

header="Date,Transaction Number,Amount,Supplier Name,Service Area,Expenses Type,Neighbourhood,Poolable,Revision,Withdrawn"
mkdir -p "$WORK/in"
cat >"$WORK/in/council.csv" <<CSV
$header
2013-04-15,T-1,1234567.89,ACME,Adult social care,,E01000001,yes,1,no
2013-05-02,T-2,-12.00,,Housing,,E01000001,no,1,no
2014-04-30,T-3,500.00,,Housing,,E01000002,yes,1,no
2013-06-01,T-4,0.99,,Housing,,E01000003,no,1,no
CSV
cat >"$WORK/in/police.csv" <<CSV
$header
2013-05-20,P-1,25000.00,,Policing,,E01000001,yes,1,no
2013-12-01,P-2,-750.00,,Policing,,E01000002,no,1,no
2014-04-01,P-3,0.01,,Policing,,E01000003,no,1,no
CSV
# Places: Estate and Ward share E01000002; E01000009 has no records; Ward lacks a population.
cat >"$WORK/places.csv" <<CSV
place,neighbourhood,population
Estate,E01000001,1500
Estate,E01000002,1499
Ward,E01000002,1499
Ward,E01000003,
Ward,E01000009,1001
CSV

start_collector --places "$WORK/places.csv"
drop council "$WORK/in/council.csv"; drain_agent council GB-LAE-BNS
drop police "$WORK/in/police.csv"; drain_agent police GB-POL-SY
grep -q "neighbourhood E01000009 has no records" "$WORK/collector.log" \
  || fail "the collector did not warn about E01000009, a member with no records"

# The reference: pence by neighbourhood, body and poolable from the CSVs (one body per file).
ref() {
  gawk -F, -v OFS=, '
    FNR == 1 { body = FILENAME ~ /police/ ? "GB-POL-SY" : "GB-LAE-BNS"; next }
    { p = $3; if (p !~ /\./) p = p ".00"; sub(/\./, "", p); print $7, body, $8, p + 0 }' \
    "$WORK/in/council.csv" "$WORK/in/police.csv"
}
ref >"$WORK/ref.csv"
pounds() { gawk '{ s = $1 < 0 ? "-" : ""; v = $1 < 0 ? -$1 : $1; printf "%s%d.%02d\n", s, int(v / 100), v % 100 }'; }

ask() { # SOURCE ARGS...: the CLI's CSV answer
  local source=$1; shift
  if [[ $source == db ]]; then
    # (the warning about the member with no records goes to stderr, checked below)
    "$CLI" --db "$WORK/collector" --places "$WORK/places.csv" --format csv "$@" 2>>"$WORK/db.err"
  else
    "$CLI" --collector "$QUERY" --format csv "$@"
  fi
}

for source in db collector; do
  # totals --place: the sum of the members.
  for place in Estate Ward; do
    members=$(gawk -F, -v p=$place '$1 == p { printf "%s ", $2 }' "$WORK/places.csv")
    want=$(gawk -F, -v m=" $members" 'index(m, " " $1 " ") { s += $4; n++ } END { printf "%d,%d\n", s, n }' "$WORK/ref.csv")
    got=$(ask $source totals --place $place | gawk -F, 'NR == 2 { p = $1; sub(/\./, "", p); printf "%d,%d\n", p, $2 }')
    [[ $got == "$want" ]] || fail "$source: totals --place $place: $got, expected $want"
  done
  # --by neighbourhood,body: one row per pair, in key order.
  want=$(gawk -F, '{ s[$1 "," $2] += $4; n[$1 "," $2]++ } END { for (k in s) printf "%s,%d,%d\n", k, s[k], n[k] }' "$WORK/ref.csv" | sort)
  got=$(ask $source totals --by neighbourhood,body | gawk -F, 'NR > 1 { p = $3; sub(/\./, "", p); printf "%s,%s,%d,%d\n", $1, $2, p, $4 }')
  [[ $got == "$want" ]] || fail "$source: --by neighbourhood,body:"$'\n'"$got"$'\n'"expected"$'\n'"$want"
  # pooling --place Estate: by body, total and poolable part.
  want=$(gawk -F, '$1 == "E01000001" || $1 == "E01000002" { s[$2] += $4; if ($3 == "yes") y[$2] += $4; n[$2]++ }
           END { for (b in s) printf "Estate,%s,%d,%d,%d\n", b, s[b], y[b], n[b] }' "$WORK/ref.csv" | sort)
  got=$(ask $source pooling --place Estate | gawk -F, 'NR > 1 { a = $3; sub(/\./, "", a); p = $4; sub(/\./, "", p); printf "%s,%s,%d,%d,%d\n", $1, $2, a, p, $6 }')
  [[ $got == "$want" ]] || fail "$source: pooling --place Estate:"$'\n'"$got"$'\n'"expected"$'\n'"$want"
  # places: residents, per resident rounded half away from zero, records; ranked by total.
  want=$(gawk -F, -v OFS=, '
    NR == FNR { if (FNR > 1) { mem[$1] = mem[$1] " " $2; cnt[$1]++; if ($3 != "") res[$1] += $3; else unpop[$1]++ } next }
    { tot[$1] += $4; rec[$1]++ }
    END { for (p in mem) { n = split(mem[p], m, " "); t = 0; r = 0; none = 0
            for (i = 1; i <= n; i++) { if (!(m[i] in rec)) none++; t += tot[m[i]]; r += rec[m[i]] }
            q = int(t / res[p]); rem = t - q * res[p]; if (2 * (rem < 0 ? -rem : rem) >= res[p]) q += t < 0 ? -1 : 1
            printf "%s,%d,%d,%d,%d,%d,%d,%d\n", p, cnt[p], none, res[p], unpop[p] + 0, t, q, r } }' \
    "$WORK/places.csv" "$WORK/ref.csv" | sort -t, -k6,6nr -k1,1)
  got=$(ask $source places | gawk -F, 'NR > 1 { sub(/\r$/, ""); t = $7; sub(/\./, "", t); printf "%s,%s,%s,%s,%s,%d,%s,%s\n", $2, $3, $4, $5, $6, t, $8, $11 }')
  [[ $got == "$want" ]] || fail "$source: places:"$'\n'"$got"$'\n'"expected"$'\n'"$want"
  # An unknown place: exit 1, named.
  status=0; out=$(ask $source totals --place Nowhere 2>&1) || status=$?
  [[ $source == collector ]] || out=$(tail -n 1 "$WORK/db.err")
  [[ $status == 1 && $out == *"unknown place"*Nowhere* ]] || fail "$source: unknown place: status $status, $out"
  # report --place: the page's figures are the CLI's (per resident for Estate, whose members all
  # have a population; n/a for Ward), to the penny.
  if [[ $source == db ]]; then
    cli=("$CLI" --db "$WORK/collector" --places "$WORK/places.csv")
  else
    cli=("$CLI" --collector "$QUERY")
  fi
  for place in Estate Ward; do
    page=$WORK/$source-$place.html
    "${cli[@]}" report --place $place --out "$page" >"$WORK/report.out" 2>>"$WORK/db.err" \
      || fail "$source: report --place $place failed"
    [[ $(cat "$WORK/report.out") == "$page" ]] || fail "$source: report did not print its path"
    python3 "$SRC/tests/integration/report_check.py" figures "$page" "place=$place" -- "${cli[@]}" \
      >"$WORK/report-check.out" || fail "$source: report --place $place differs from the CLI"
    note "$source: report --place $place: $(cat "$WORK/report-check.out")"
  done
  status=0; "${cli[@]}" report --place Nowhere --out "$WORK/nowhere.html" 2>"$WORK/nowhere.err" || status=$?
  [[ $status == 1 && ! -e $WORK/nowhere.html ]] && grep -q 'unknown place "Nowhere"' "$WORK/nowhere.err" \
    || fail "$source: report --place Nowhere: status $status, $(cat "$WORK/nowhere.err")"
done
[[ $(ask db places) == "$(ask collector places)" ]] || fail "places differ between --db and --collector"
grep -q 'place "Ward": neighbourhood E01000009 has no records' "$WORK/db.err" || fail "--db did not warn about E01000009"
note "place totals, --by neighbourhood,body, pooling --place and places agree with the reference through both sources"

# SIGHUP with a changed file: the new place is answered.
printf 'place,neighbourhood\nSolo,E01000003\n' >"$WORK/places.csv"
kill -HUP "${PIDS[collector]}"
wait_for 20 "the reloaded places" bash -c "'$CLI' --collector '$QUERY' --format csv totals --place Solo >/dev/null 2>&1"
# A bad file on reload: logged with file:line, the old places kept.
printf 'place,neighbourhood\nSolo,E01 bad\n' >"$WORK/places.csv"
kill -HUP "${PIDS[collector]}"
wait_for 20 "the reload error" grep -q "places.csv:2: field neighbourhood" "$WORK/collector.log"
ask collector totals --place Solo >/dev/null || fail "a bad places file on reload dropped the loaded places"
stop collector
# --check reads the places file too.
status=0
"${RUN[@]}" "$COLLECTOR" --state-dir "$WORK/collector" "${COLLECTOR_SECURITY[@]}" \
  --places "$WORK/places.csv" --check >"$WORK/check.log" 2>&1 || status=$?
[[ $status == 1 ]] && grep -q "places.csv:2: field neighbourhood" "$WORK/check.log" \
  || fail "--check passed a bad places file (status $status): $(cat "$WORK/check.log")"
# A bad file at start: refused, exit non-zero, file:line in the message.
status=0
"${RUN[@]}" "$COLLECTOR" --state-dir "$WORK/collector" --ingest "$INGEST" --query "$QUERY" \
  "${COLLECTOR_SECURITY[@]}" --places "$WORK/places.csv" >"$WORK/bad-start.log" 2>&1 || status=$?
[[ $status != 0 ]] || fail "the collector started with a bad places file"
grep -q "places.csv:2: field neighbourhood" "$WORK/bad-start.log" || fail "no file:line in: $(cat "$WORK/bad-start.log")"
note "reload seen, a bad file on reload keeps the old places, a bad file at start is refused (status $status)"
