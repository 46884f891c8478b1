# Real exports as councils publish them, real processes: an export with no transaction numbers and
# no neighbourhoods (the layout of deploy/agent-council-unit.conf: Organisational Unit, Payment
# Date, Amount, Beneficiary Name, plus a Postcode column), with identical rows and credits, goes
# through the shipped config, a unit lookup that splits council-wide rows by population and a
# postcode lookup in the ONS Postcode Directory layout. The collector's totals must equal totals
# computed here independently in gawk; the same file dropped again, or re-issued reordered and
# reformatted, changes nothing; unplaceable rows are in the rejects file with line and reason.
# Then an export with transaction numbers corrects and withdraws split rows: every part follows.
source "$(dirname "$0")/lib.sh"
CONF=$SRC/deploy/agent-council-unit.conf
CSV=$WORK/csv
mkdir -p "$CSV"

# ---------------------------------------------------------------- the data
gawk -v out="$CSV" -v rows=3000 -v seed=20140423 'BEGIN {
  srand(seed)
  # The unit lookup, rows deliberately out of code order.
  f = out "/units.csv"
  print "Organisational Unit,Neighbourhood,Weight" > f
  print "Councilwide,E01007307,1705" > f
  print "Asset Management,E01007308," > f
  print "Councilwide,E01007304,1612" > f
  print "Highways,E01007310,3" > f
  print "Adult Social Care,E01007307," > f
  print "Councilwide,E01007308,1550" > f
  print "Housing Repairs,E01007304," > f
  print "Councilwide,E01007306,1580" > f
  print "Highways,E01007309,1" > f
  print "Parks and Open Spaces,E01007306," > f
  print "Councilwide,E01007305,1498" > f
  close(f)

  # A cut of the ONS Postcode Directory: many columns, pcd8-style padding in pcd2.
  f = out "/postcodes.csv"
  print "pcd,pcd2,pcds,dointr,doterm,oslaua,lsoa11,msoa11,lsoa21" > f
  for (i = 0; i < 40; i++) {
    pc[i] = sprintf("S7%d %d%c%c", i % 6, i % 9 + 1, 65 + i % 26, 65 + int(i / 26))
    lsoa = sprintf("E010073%02d", 1 + int(rand() * 12))
    split(pc[i], half, " ")
    printf "%s,%s  %s,%s,199001,,E08000016,%s,E02001517,%s\n", pc[i], half[1], half[2], pc[i], lsoa, lsoa > f
  }
  print "S75 9ZZ,S75  9ZZ,S75 9ZZ,199001,,,,," > f   # a postcode in no LSOA
  close(f)

  split("Asset Management|Adult Social Care|Housing Repairs|Parks and Open Spaces|Councilwide|Highways|Schools|Libraries", unit, "|")
  split("15 30 40 45 60 70 85 100", cut, " ")
  split("BERMAR BUILDING CO LTD|BRITISH GAS TRADING LTD|CARE UK LTD|KIER SERVICES|TARMAC LTD|VEOLIA ES (UK) LTD|ESPO|BARNARDOS|GLENDALE GROUNDS|\"SMITH, J\"", supplier, "|")

  header = "Organisational Unit,Payment Date,Amount,Beneficiary Name,Postcode"
  f = out "/council.csv"
  print header > f
  n = 0
  for (r = 0; r < rows; r++) {
    u = pick_unit()
    name = unit[u]
    x = rand()
    if (x < 0.1) name = toupper(name)
    else if (x < 0.2) name = "  " tolower(name) " "
    if (u <= 6)
      postcode = rand() < 0.5 ? spelled(pc[int(rand() * 40)]) : ""
    else {
      x = rand()
      postcode = x < 0.6 ? spelled(pc[int(rand() * 40)]) : (x < 0.7 ? "ZZ9 9ZZ" : (x < 0.8 ? "S75 9ZZ" : ""))
    }
    day = 1 + int(rand() * 28); month = rand() < 0.5 ? 4 : 5
    pence = rand() < 0.15 ? -(100 + int(rand() * 2000000)) : 100 + int(rand() * 5000000)
    keep_unit[n] = name; keep_day[n] = day; keep_month[n] = month; keep_pence[n] = pence
    keep_supplier[n] = supplier[1 + int(rand() * 10)]; keep_postcode[n] = postcode
    emit(f, n, 0)
    n++
    if (rand() < 0.08) { copy(n - 1, n); emit(f, n, 0); n++ }   # two equal payments, side by side
    if (rand() < 0.03) later[++n_later] = n - 1                 # and far apart
  }
  for (k = 1; k <= n_later; k++) { copy(later[k], n); emit(f, n, 0); n++ }
  close(f)

  # The same payments re-issued: rows shuffled, dates as DD/MM/YYYY, amounts with a pound sign.
  for (i = 0; i < n; i++) order[i] = i
  for (i = n - 1; i > 0; i--) { j = int(rand() * (i + 1)); t = order[i]; order[i] = order[j]; order[j] = t }
  f = out "/reissue.csv"
  print header > f
  for (i = 0; i < n; i++) emit(f, order[i], 1)
  close(f)

  # An export with transaction numbers, then its corrections and withdrawals.
  idh = "Transaction Number,Organisational Unit,Payment Date,Amount,Beneficiary Name,Revision,Withdrawn"
  f = out "/ids.csv"
  print idh > f
  for (i = 1; i <= 300; i++) {
    u = 1 + int(rand() * 6)
    id_unit[i] = unit[u]; id_pence[i] = 100 + int(rand() * 900000)
    if (rand() < 0.15) id_pence[i] = -id_pence[i]
    printf "T%04d,%s,2014-06-%02d,%s,%s,1,\n", i, id_unit[i], 1 + i % 28, money(id_pence[i]), supplier[1 + i % 10] > f
  }
  close(f)
  f = out "/fixes.csv"
  w = out "/withdrawn_split.txt"
  print idh > f
  for (i = 1; i <= 300; i++) {
    if (id_unit[i] == "Councilwide") {
      x = rand()
      if (x < 0.35) { fix(f, i, 2, "Councilwide", 1); print "T" sprintf("%04d", i) > w }   # withdrawn
      else if (x < 0.5) fix(f, i, 2, "Parks and Open Spaces", 0)                       # to one
      else if (x < 0.65) fix(f, i, 2, "Highways", 0)                                   # to fewer parts
      else if (x < 0.75) { fix(f, i, 2, "Councilwide", 0); fix(f, i, 3, "Asset Management", 1) }
    }
    else if (rand() < 0.2) fix(f, i, 2, "Councilwide", 0)                               # one to many
    else if (rand() < 0.1) fix(f, i, 3, id_unit[i], 1)                                  # withdrawn
  }
  close(f); close(w)
}
function pick_unit(   x, u) {
  x = rand() * 100
  for (u = 1; u <= 8; u++) if (x < cut[u]) return u
  return 8
}
function spelled(p,   x) {
  x = rand()
  if (x < 0.25) return tolower(p)
  if (x < 0.5) { gsub(/ /, "", p); return p }
  if (x < 0.75) { sub(/ /, "  ", p); return p }
  return p
}
function copy(from, to) {
  keep_unit[to] = keep_unit[from]; keep_day[to] = keep_day[from]; keep_month[to] = keep_month[from]
  keep_pence[to] = keep_pence[from]; keep_supplier[to] = keep_supplier[from]; keep_postcode[to] = keep_postcode[from]
}
function money(p,   a, s) {
  a = p < 0 ? -p : p
  s = sprintf("%d.%02d", int(a / 100), a % 100)
  return (p < 0 ? "-" : "") s
}
function grouped(p,   a, whole, s) {
  a = p < 0 ? -p : p
  whole = int(a / 100); s = ""
  while (whole >= 1000) { s = sprintf(",%03d", whole % 1000) s; whole = int(whole / 1000) }
  return "\"" (p < 0 ? "-" : "") "\xC2\xA3" whole s sprintf(".%02d", a % 100) "\""
}
function emit(f, i, reissued,   date, amount) {
  if (reissued) { date = sprintf("%02d/%02d/2014", keep_day[i], keep_month[i]); amount = grouped(keep_pence[i]) }
  else {
    date = sprintf("2014-%02d-%02d", keep_month[i], keep_day[i])
    amount = (keep_pence[i] >= 100000 && i % 3 == 0) ? grouped(keep_pence[i]) : money(keep_pence[i])
  }
  printf "%s,%s,%s,%s,%s\n", keep_unit[i], date, amount, keep_supplier[i], keep_postcode[i] > f
}
function fix(f, i, revision, to, withdrawn) {
  id_pence[i] += 1 + int(rand() * 5000)
  printf "T%04d,%s,2014-06-%02d,%s,%s,%d,%s\n", i, to, 1 + i % 28, money(id_pence[i]), supplier[1 + i % 10], revision, withdrawn ? "yes" : "" > f
}'
[[ -s $CSV/withdrawn_split.txt ]] || fail "the generated fixes withdraw no split row"

# The independent reference: reads the lookups and exports as a person checking them would, splits
# by the largest-remainder rule itself and prints the totals the collector must hold, in the lines
# lib.sh's `actual` prints, plus "reject FILE LINE" for rows no rule places and "placed PENCE",
# the sum of the placed rows before any split.
#   gawk -v UNITS=... -v POSTCODES=... -v BODIES="B1 B2" -f reference.awk FILE...
cat >"$WORK/reference.awk" <<'AWK'
BEGIN {
  FPAT = "([^,]*)|(\"([^\"]|\"\")*\")"
  split(BODIES, body_of, " ")
  while ((getline line < UNITS) > 0) {
    if (++n_unit_lines == 1) continue
    $0 = line
    key = fold(cell(1)); code = cell(2); weight = cell(3) == "" ? 1 : cell(3)
    codes[key] = codes[key] " " code
    weight_of[key, code] = weight
  }
  while ((getline line < POSTCODES) > 0) {
    $0 = line
    if (++n_pc_lines == 1) { for (i = 1; i <= NF; i++) col[cell(i)] = i; continue }
    if (cell(col["lsoa21"]) != "") area[postcode(cell(col["pcds"]))] = cell(col["lsoa21"])
  }
  $0 = ""
}
FNR == 1 {
  body = body_of[++file_index]; file = FILENAME; sub(/.*\//, "", file)
  delete c
  for (i = 1; i <= NF; i++) c[tolower(cell(i))] = i
  next
}
{
  key = (c["transaction number"] ? body SUBSEP cell(c["transaction number"]) : file SUBSEP FNR)
  revision = c["revision"] && cell(c["revision"]) != "" ? cell(c["revision"]) + 0 : 1
  if ((key in rev) && revision <= rev[key]) next     # the highest revision wins, the first on a tie
  rev[key] = revision; row_body[key] = body; row_file[key] = file; row_line[key] = FNR
  gone[key] = c["withdrawn"] && tolower(cell(c["withdrawn"])) == "yes"
  unit_of[key] = fold(cell(c["organisational unit"]))
  pc_of[key] = c["postcode"] ? postcode(cell(c["postcode"])) : ""
  pence_of[key] = pence(cell(c["amount"]))
}
END {
  for (key in rev) {
    if (gone[key]) continue
    b = row_body[key]; p = pence_of[key]; u = unit_of[key]
    if (u in codes) {
      n = split(substr(codes[u], 2), list, " ")
      asort(list)
      for (i = 1; i <= n; i++) w[i] = weight_of[u, list[i]]
      split_pence(p, n)
      for (i = 1; i <= n; i++) add(list[i], b, part[i])
    }
    else if (pc_of[key] in area) add(area[pc_of[key]], b, p)
    else { print "reject", row_file[key], row_line[key]; continue }
    placed += p
  }
  for (nbh in total_records) printf "total %s %d %d\n", nbh, total_pence[nbh], total_records[nbh]
  for (k in body_records) { split(k, kb, SUBSEP); printf "body %s %s %d %d\n", kb[1], kb[2], body_pence[k], body_records[k] }
  printf "grand %d %d\n", grand_pence, grand_records
  printf "placed %d\n", placed
}
function add(nbh, b, p) {
  total_pence[nbh] += p; total_records[nbh]++
  body_pence[nbh, b] += p; body_records[nbh, b]++
  grand_pence += p; grand_records++
}
# Largest remainder: floor shares of the magnitude, spare pence to the largest remainders, the
# lower index first on a tie; a credit is the mirror image of a payment.
function split_pence(p, n,   m, total, i, given, best, r, taken) {
  m = p < 0 ? -p : p; total = 0; given = 0
  for (i = 1; i <= n; i++) total += w[i]
  for (i = 1; i <= n; i++) { r[i] = (m * w[i]) % total; part[i] = (m * w[i] - r[i]) / total; given += part[i] }
  for (; given < m; given++) {
    best = 0
    for (i = 1; i <= n; i++) if (!(i in taken) && (best == 0 || r[i] > r[best])) best = i
    taken[best] = 1; part[best]++
  }
  if (p < 0) for (i = 1; i <= n; i++) part[i] = -part[i]
}
function cell(i,   s) {
  if (i == 0) return ""
  s = $i
  if (s ~ /^".*"$/) { s = substr(s, 2, length(s) - 2); gsub(/""/, "\"", s) }
  gsub(/^[ \t\r]+|[ \t\r]+$/, "", s)
  return s
}
function fold(s) { s = tolower(s); gsub(/[ \t\r\n]+/, " ", s); gsub(/^ | $/, "", s); return s }
function postcode(s) { s = toupper(s); gsub(/[ \t\r\n]/, "", s); return s }
function pence(s,   negative, whole, frac) {
  gsub(/\xC2\xA3|,/, "", s)
  negative = sub(/^-/, "", s)
  whole = s; frac = "00"
  if (index(s, ".")) { whole = substr(s, 1, index(s, ".") - 1); frac = substr(s "00", index(s, ".") + 1, 2) }
  return (negative ? -1 : 1) * (whole * 100 + frac)
}
AWK

reference() { # BODIES FILE...
  local bodies=$1; shift
  LC_ALL=C gawk -v UNITS="$CSV/units.csv" -v POSTCODES="$CSV/postcodes.csv" -v BODIES="$bodies" \
    -f "$WORK/reference.awk" "$@" | sort
}

# run_agent NAME BODY [OPTIONS...]: the shipped config, this test's folders and lookups, --once.
run_agent() {
  local name=$1 body=$2; shift 2
  mkdir -p "$WORK/$name/inbox"
  # shellcheck disable=SC2046
  timeout 120 "$AGENT" -c "$CONF" $(agent_args "$name" "$body") \
    --set neighbourhood/lookup_file="$CSV/units.csv" \
    --set neighbourhood/postcode_file="$CSV/postcodes.csv" "$@" --once >>"$WORK/$name.log" 2>&1 \
    || fail "agent $name did not deliver everything within 120 s"
}

# compare_totals BODIES FILE...: the collector's totals must equal the reference's exactly.
compare_totals() {
  reference "$@" >"$WORK/reference.txt"
  grep -E '^(total|body|grand) ' "$WORK/reference.txt" | sort >"$WORK/expected.txt" || true
  actual | sort >"$WORK/actual.txt"
  if ! diff -u "$WORK/expected.txt" "$WORK/actual.txt" >"$WORK/totals.diff"; then
    head -n 40 "$WORK/totals.diff" >&2
    fail "collector totals differ from the totals computed from the CSV files"
  fi
  note "totals match the reference: $(grep -c '^total' "$WORK/expected.txt") neighbourhoods, $(grep '^grand' "$WORK/expected.txt")"
}

start_collector

# ---------------------------------------------------------------- derived ids, lookups, splits
note "an export without ids or neighbourhoods ($(($(wc -l <"$CSV/council.csv") - 1)) rows)"
drop council "$CSV/council.csv"
run_agent council GB-LAE-BNS
[[ -f $WORK/council/inbox/done/council.csv ]] || fail "the export was not processed"
compare_totals "GB-LAE-BNS" "$CSV/council.csv"
before=$(cat "$WORK/actual.txt")

note "the parts sum to the original rows in the grand total, to the penny"
placed=$(gawk '$1 == "placed" { print $2 }' "$WORK/reference.txt")
grand=$(gawk '$1 == "grand" { print $2 }' "$WORK/actual.txt")
[[ -n $placed && $placed == "$grand" ]] || fail "grand total $grand is not the sum $placed of the placed rows"

note "rows no rule can place are in the rejects file with their line and reason, nothing else"
rejects=$WORK/council/inbox/done/council.rejects.csv
[[ -f $rejects ]] || fail "no rejects file"
gawk '$1 == "reject" { print $3 }' "$WORK/reference.txt" | sort -n >"$WORK/expected_rejects.txt"
tail -n +2 "$rejects" | gawk -F, '{ print $2 }' | sort -n >"$WORK/actual_rejects.txt"
diff -u "$WORK/expected_rejects.txt" "$WORK/actual_rejects.txt" >&2 || fail "rejected lines differ from the rows no rule places"
[[ -s $WORK/expected_rejects.txt ]] || fail "the export should have unplaceable rows"
tail -n +2 "$rejects" | gawk -F, '$3 !~ /^"no neighbourhood: / { bad++ } END { exit bad > 0 }' \
  || fail "a rejection does not say \"no neighbourhood\": $(head -n 3 "$rejects")"
rows=$(($(wc -l <"$CSV/council.csv") - 1))
rejected=$(wc -l <"$WORK/actual_rejects.txt")
log_line=$(grep 'council.csv: ' "$WORK/council.log" | tail -n 1)
[[ $log_line == *"$rejected rows rejected"* ]] || fail "the agent's log does not count $rejected rejected rows: $log_line"
note "$rows rows: $rejected rejected, the rest placed ($log_line)"

note "the same file dropped again changes nothing"
drop council "$CSV/council.csv" council-again.csv
run_agent council GB-LAE-BNS
[[ -f $WORK/council/inbox/done/council-again.csv ]] || fail "the repeated file was not processed"
actual | sort >"$WORK/again.txt"
[[ $(cat "$WORK/again.txt") == "$before" ]] || fail "dropping the same file twice changed the totals"

note "re-issued with rows reordered, dates and amounts written differently: nothing changes"
drop council "$CSV/reissue.csv"
run_agent council GB-LAE-BNS
[[ -f $WORK/council/inbox/done/reissue.csv ]] || fail "the re-issued file was not processed"
actual | sort >"$WORK/again.txt"
[[ $(cat "$WORK/again.txt") == "$before" ]] || fail "the re-issued export changed the totals"
[[ ! -s $WORK/council/state/collector-rejects.csv ]] \
  || fail "the collector refused records of a re-sent export: $(head -n 3 "$WORK/council/state/collector-rejects.csv")"

# ---------------------------------------------------------------- corrections move every part
note "an export with ids: split rows corrected and withdrawn, every part follows"
drop ids "$CSV/ids.csv"
run_agent ids GB-LAE-IDS --set columns/record_id="Transaction Number"
compare_totals "GB-LAE-BNS GB-LAE-IDS" "$CSV/council.csv" "$CSV/ids.csv"
split_before=$(gawk '$1 == "grand" { print $2 }' "$WORK/actual.txt")
drop ids "$CSV/fixes.csv"
run_agent ids GB-LAE-IDS --set columns/record_id="Transaction Number"
compare_totals "GB-LAE-BNS GB-LAE-IDS GB-LAE-IDS" "$CSV/council.csv" "$CSV/ids.csv" "$CSV/fixes.csv"
[[ $(gawk '$1 == "grand" { print $2 }' "$WORK/actual.txt") != "$split_before" ]] \
  || fail "the corrections changed nothing"
[[ ! -s $WORK/ids/state/collector-rejects.csv ]] \
  || fail "the collector refused corrections: $(head -n 3 "$WORK/ids/state/collector-rejects.csv")"
checked=0
while read -r id; do
  for part in "$id/1" "$id/2" "$id/3" "$id/4" "$id/5"; do
    "$CLI" --db "$WORK/collector" --format json record GB-LAE-IDS "$part" >"$WORK/record.json" \
      || fail "part $part of withdrawn $id is not stored"
    [[ $(jq -r '.record.withdrawn' "$WORK/record.json") == true ]] || fail "part $part of withdrawn $id still counts"
    checked=$((checked + 1))
  done
done <"$CSV/withdrawn_split.txt"
note "$checked parts of $(wc -l <"$CSV/withdrawn_split.txt") withdrawn split rows are all withdrawn"

# ---------------------------------------------------------------- the shipped configs and samples
note "the shipped configs check out with the sample lookups; a bad lookup names file and line"
# -n reads the key files too: keys for the configs' agent ids stand in for /etc/totalplace/keys.
make_keys collector collector
make_keys example-council agent GB-LAE-BNS
make_keys example-council-tc agent GB-LAE-BNS
# shellcheck disable=SC2046
"$AGENT" -c "$CONF" --set neighbourhood/lookup_file="$SRC/deploy/sample/lookups/council-units.csv" \
  --set neighbourhood/postcode_file="$SRC/deploy/sample/lookups/postcodes-onspd.csv" \
  $(agent_keys example-council) -n >/dev/null \
  || fail "deploy/agent-council-unit.conf does not check out with the sample lookups"
# shellcheck disable=SC2046
"$AGENT" -c "$SRC/deploy/agent-transparency-code.conf" \
  --set neighbourhood/lookup_file="$SRC/deploy/sample/lookups/cost-centres.csv" \
  $(agent_keys example-council-tc) -n >/dev/null \
  || fail "deploy/agent-transparency-code.conf does not check out with the sample lookup"
printf 'Organisational Unit,Neighbourhood,Weight\nParks,E01007306,\nRoads,E01 007,\n' >"$WORK/bad-units.csv"
if "$AGENT" -c "$CONF" --set neighbourhood/lookup_file="$WORK/bad-units.csv" \
  --set neighbourhood/postcode_file="$CSV/postcodes.csv" -n 2>"$WORK/check.err"; then
  fail "a bad lookup file passed the config check"
fi
grep -F 'bad-units.csv: line 3: the neighbourhood code "E01 007" has character 0x20 at byte 4' "$WORK/check.err" >/dev/null \
  || fail "the check does not name the bad lookup's file and line: $(cat "$WORK/check.err")"

note "the sample exports go through the shipped configs"
drop sample "$SRC/deploy/sample/council-units-2014-04.csv"
run_agent sample GB-LAE-SMP --set neighbourhood/lookup_file="$SRC/deploy/sample/lookups/council-units.csv" \
  --set neighbourhood/postcode_file="$SRC/deploy/sample/lookups/postcodes-onspd.csv"
[[ -f $WORK/sample/inbox/done/council-units-2014-04.csv ]] || fail "the council-units sample failed"
grep -E '^"council-units-2014-04.csv",12,"no neighbourhood' "$WORK/sample/inbox/done/council-units-2014-04.rejects.csv" >/dev/null \
  || fail "the Schools row of the sample was not rejected for want of a neighbourhood"
mkdir -p "$WORK/tc/inbox"
drop tc "$SRC/deploy/sample/transparency-code-2014-04.csv"
# shellcheck disable=SC2046
timeout 120 "$AGENT" -c "$SRC/deploy/agent-transparency-code.conf" $(agent_args tc GB-LAE-TCX) \
  --set neighbourhood/lookup_file="$SRC/deploy/sample/lookups/cost-centres.csv" --once >>"$WORK/tc.log" 2>&1 \
  || fail "the transparency-code agent did not deliver everything"
[[ -f $WORK/tc/inbox/done/transparency-code-2014-04.csv ]] || fail "the transparency-code sample failed"
"$CLI" --db "$WORK/collector" --format json record GB-LAE-TCX BNS200005/8 >"$WORK/record.json" \
  || fail "the split Environmental Services row has no part 8"
[[ $(jq -r '.record.withdrawn' "$WORK/record.json") == false ]] || fail "part 8 of a split row is withdrawn"

# ---------------------------------------------------------------- reload
note "SIGHUP reads the lookup again; a bad one is refused and the running one kept"
cp "$CSV/units.csv" "$WORK/live-units.csv"
start_agent live GB-LAE-RLD -c "$CONF" --set neighbourhood/lookup_file="$WORK/live-units.csv" \
  --set neighbourhood/postcode_file="$CSV/postcodes.csv"
printf 'Organisational Unit,Payment Date,Amount,Beneficiary Name\nSchools,2014-07-01,10.00,ESPO\n' >"$WORK/r1.csv"
drop live "$WORK/r1.csv"
# Its only row cannot be placed: the file is held in failed/, its rejects beside it.
wait_for 30 "the first file of the live agent" test -f "$WORK/live/inbox/failed/r1.rejects.csv"
grep -F 'Organisational Unit ""Schools"" is not in the lookup' "$WORK/live/inbox/failed/r1.rejects.csv" >/dev/null \
  || fail "Schools was placed before the lookup knew it"
grep -F 'the values most often not found: Organisational Unit "Schools" (1 rows)' "$WORK/live/inbox/failed/r1.csv.error" >/dev/null \
  || fail "the held file's note does not name the value to add to the lookup"
printf 'Organisational Unit,Neighbourhood\nSchools,E01 007\n' >"$WORK/live-units.csv"
kill -HUP "${PIDS[live]}"
wait_for 30 "the bad lookup to be refused" grep -F "live-units.csv: line 2" "$WORK/live.log"
grep -F "reload refused" "$WORK/live.log" >/dev/null || fail "a bad lookup at reload was not refused"
{ cat "$CSV/units.csv"; echo "Schools,E01007311,"; } >"$WORK/live-units.csv"
kill -HUP "${PIDS[live]}"
wait_for 30 "the good lookup to be loaded" grep -F "config reloaded" "$WORK/live.log"
printf 'Organisational Unit,Payment Date,Amount,Beneficiary Name\nSchools,2014-07-02,12.34,ESPO\n' >"$WORK/r2.csv"
drop live "$WORK/r2.csv"
# The held file, dropped again once the lookup knows its value, is delivered too.
mv "$WORK/live/inbox/failed/r1.csv" "$WORK/live/inbox/r1.csv"
school_total() {
  "$CLI" --db "$WORK/collector" --format csv totals --neighbourhood E01007311 --by body 2>/dev/null |
    gawk -F, '$1 == "GB-LAE-RLD" && $2 == "22.34" { found = 1 } END { exit !found }'
}
wait_for 30 "the row placed by the reloaded lookup" school_total
kill -0 "${PIDS[live]}" || fail "the agent died during the reloads"
stop live TERM || fail "the live agent did not exit 0 on SIGTERM"

stop collector TERM || fail "collector did not exit 0 on SIGTERM"
echo "1 passed, 0 failed"
