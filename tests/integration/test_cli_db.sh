#!/usr/bin/env bash
# test_cli_db: fills a store with tp_fill from two batches of records (duplicates, corrections, a
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
fill=$TOTALPLACE_BIN/tests/tp_fill
[[ -x $cli ]] || fail "no totalplace binary at $cli"
[[ -x $fill ]] || fail "no tp_fill at $fill"
command -v jq >/dev/null || fail "jq is required to read the JSON answers (apt-get install jq)"
export LC_ALL=C

base=${TOTALPLACE_TEST_TMP:-/tmp}
mkdir -p "$base"
work=$(mktemp -d "$base/test_cli_db.XXXXXX")
trap 'rm -rf "$work"' EXIT
store=$work/store
started=$(date -u +%s)

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
# Store semantics, applied line by line: invalid -> rejected; new key -> accepted; lower revision ->
# stale; same revision and content -> duplicate; same revision, other content -> rejected (a
# conflict); higher revision -> superseded. Writes each line's outcome, the counters and the final
# version of every stored key (withdrawn ones too).
cat "$work/batch1" "$work/batch2" | awk -F'|' -v counters="$work/counters" -v live="$work/live" '
  function valid(p) { return p ~ /^[0-9][0-9][0-9][0-9]-(0[1-9]|1[0-2])$/ }
  {
    k = $1 "|" $2
    if (!valid($6)) { o = "rejected" }
    else if (!(k in line)) { o = "accepted"; line[k] = $0; rev[k] = $3 + 0; keys[++n] = k }
    else if ($3 + 0 < rev[k]) { o = "stale" }
    else if ($3 + 0 == rev[k]) { o = ($0 == line[k]) ? "duplicate" : "rejected" }
    else { o = "superseded"; line[k] = $0; rev[k] = $3 + 0 }
    count[o]++
    print o
  }
  END {
    printf "%d|%d|%d|%d|%d|%d\n", count["accepted"], count["duplicate"], count["superseded"],
      count["stale"], count["rejected"], n > counters
    for (i = 1; i <= n; i++) print line[keys[i]] > live
  }' >"$work/model_outcomes"

# The outcomes tp_fill reported must be the model's (this checks the model as much as the store).
expected_outcomes=$(cat "$work/model_outcomes")
actual_outcomes=$(cat "$work/outcomes1" "$work/outcomes2" | awk '{ print $2 }')
[[ $expected_outcomes == "$actual_outcomes" ]] ||
  fail "store outcomes differ from the model: $(diff <(echo "$expected_outcomes") <(echo "$actual_outcomes"))"
IFS='|' read -r n_accepted n_duplicate n_superseded n_stale n_rejected n_stored <"$work/counters"
((n_duplicate > 0 && n_superseded > 0 && n_stale > 0 && n_rejected > 1)) ||
  fail "the input no longer exercises every outcome"

# Formatting, in awk, written separately from the C code: pounds for people and for CSV, shares.
AWK_LIB='
  function abs(x) { return x < 0 ? -x : x }
  function plain(p,  a) { a = abs(p); return (p < 0 ? "-" : "") sprintf("%d.%02d", int(a / 100), a % 100) }
  function group(n,  s, out) {
    s = sprintf("%d", n); out = ""
    while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
    return s out
  }
  function people(p,  a) { a = abs(p); return (p < 0 ? "-" : "") "£" group(int(a / 100)) "." sprintf("%02d", a % 100) }
  function csv(s) {
    if (s ~ /[",]/ || s ~ /^ / || s ~ / $/) { gsub(/"/, "\"\"", s); return "\"" s "\"" }
    return s
  }
  function permille(part, whole,  s, q, r) {
    s = part * 1000; q = int(s / whole); r = s - q * whole
    if (2 * abs(r) >= whole) q += (s < 0 ? -1 : 1)
    return q
  }
  function share(part, whole, sign,  q, a) {
    if (whole <= 0) return "n/a"
    q = permille(part, whole); a = abs(q)
    return (q < 0 ? "-" : "") sprintf("%d.%d", int(a / 10), a % 10) sign
  }
  function fyear(p,  y, m) { y = substr(p, 1, 4) + 0; m = substr(p, 6, 2) + 0; if (m < 4) y--; return sprintf("%d-%02d", y, (y + 1) % 100) }
'

# Records counting in the totals: the final version of each key, unless withdrawn.
live() { awk -F'|' '$9 != "y"' "$work/live"; }

# ---------------------------------------------------------------- helpers

# Runs the CLI (never allowed to hang) and fails unless it exits 0.
run() {
  local out
  out=$(timeout 30 "$cli" "$@") || fail "totalplace $* exited $?"
  printf '%s\n' "$out"
}

# Rows of a table answer as cells joined by '|': caption, blank line, header and rule dropped.
table_rows() { tail -n +5 | sed -E 's/^ +//; s/ {2,}/|/g; s/ +$//'; }
table_header() { sed -n 3p | sed -E 's/^ +//; s/ {2,}/|/g; s/ +$//'; }

same() { # what expected actual
  [[ $2 == "$3" ]] || fail "$1:
--- expected
$2
--- actual
$3"
}

# Every CSV line must end in CRLF; compare without the CR.
csv_of() {
  local raw
  raw=$(run --format csv "$@")
  local lines crlf
  lines=$(printf '%s\n' "$raw" | wc -l)
  crlf=$(printf '%s\n' "$raw" | grep -c $'\r$' || true)
  [[ $lines == "$crlf" ]] || fail "totalplace --format csv $*: $((lines - crlf)) lines without CRLF"
  printf '%s\n' "$raw" | tr -d '\r'
}

# ---------------------------------------------------------------- neighbourhoods
ranked=$(live | awk -F'|' '{ a[$4] += $7; n[$4]++ } END { for (k in a) printf "%s|%d|%d\n", k, a[k], n[k] }' |
  sort -t'|' -k2,2nr -k1,1)
[[ $(printf '%s\n' "$ranked" | wc -l) -eq 3 ]] || fail "model: expected 3 live neighbourhoods"

expected=$(printf '%s\n' "$ranked" | awk -F'|' "$AWK_LIB"'{ printf "%d|%s|%s|%s\n", NR, $1, people($2), group($3) }')
out=$(run --db "$store" neighbourhoods)
same "neighbourhoods table header" "rank|neighbourhood|total|records" "$(table_header <<<"$out")"
same "neighbourhoods table" "$expected" "$(table_rows <<<"$out")"

expected=$(printf '%s\n' "$ranked" | awk -F'|' "$AWK_LIB"'BEGIN { print "rank,neighbourhood,total,records" }
  { printf "%d,%s,%s,%d\n", NR, csv($1), plain($2), $3 }')
same "neighbourhoods csv" "$expected" "$(csv_of neighbourhoods --db "$store")"

expected=$(printf '%s\n' "$ranked" | awk -F'|' '{ printf "%d|%s|%s|%s\n", NR, $1, $2, $3 }')
json=$(run neighbourhoods --format json --db "$store")
jq -e '.query == "neighbourhoods" and (.rows | type == "array")' >/dev/null <<<"$json" ||
  fail "neighbourhoods json shape: $json"
jq -e 'all(.rows[]; (.amount_pence | type == "number") and (.amount_pence | floor) == .amount_pence)' \
  >/dev/null <<<"$json" || fail "neighbourhoods json: amounts must be integers"
same "neighbourhoods json" "$expected" \
  "$(jq -r '.rows[] | "\(.rank)|\(.neighbourhood)|\(.amount_pence)|\(.records)"' <<<"$json")"

# ---------------------------------------------------------------- totals
# Expected "key|amount|records" for: neighbourhood by fiscal_year month body service poolable.
model_totals() {
  live | awk -F'|' -v nb="$1" -v by="$2" -v fy="$3" -v month="$4" -v body="$5" -v service="$6" \
    -v pool="$7" "$AWK_LIB"'
    (nb == "" || $4 == nb) && (fy == "" || fyear($6) == fy) && (month == "" || $6 == month) &&
    (body == "" || $1 == body) && (service == "" || $5 == service) &&
    (pool == "" || $8 == (pool == "yes" ? "y" : "n")) {
      if (by == "body") k = $1; else if (by == "service") k = $5; else if (by == "fiscal-year") k = fyear($6)
      else if (by == "month") k = $6; else if (by == "poolable") k = ($8 == "y" ? "yes" : "no")
      else if (by == "neighbourhood") k = $4; else k = ""
      a[k] += $7; n[k]++
    }
    END {
      if (by == "" && !("" in a)) { a[""] = 0; n[""] = 0 }
      for (k in a) printf "%s|%d|%d\n", k, a[k], n[k]
    }' | sort -t'|' -k1,1
}

check_totals() { # nb by fy month body service poolable
  local nb=$1 by=$2 fy=$3 month=$4 body=$5 service=$6 pool=$7
  local args=(totals)
  [[ -n $nb ]] && args+=(--neighbourhood "$nb")
  [[ -n $by ]] && args+=(--by "$by")
  [[ -n $fy ]] && args+=(--fiscal-year "$fy")
  [[ -n $month ]] && args+=(--month "$month")
  [[ -n $body ]] && args+=(--body "$body")
  [[ -n $service ]] && args+=(--service "$service")
  [[ -n $pool ]] && args+=(--poolable "$pool")
  local what="totals nb=$nb by=$by fy=$fy month=$month body=$body service=$service poolable=$pool"
  local model
  model=$(model_totals "$@")
  [[ -n $model ]] || fail "model: $what has no rows"

  local out expected
  out=$(run --db "$store" "${args[@]}")
  if [[ -n $by ]]; then
    expected=$(awk -F'|' "$AWK_LIB"'{ printf "%s|%s|%s\n", $1, people($2), group($3) }' <<<"$model")
    same "$what: table header" "$by|total|records" "$(table_header <<<"$out")"
  else
    expected=$(awk -F'|' "$AWK_LIB"'{ printf "%s|%s\n", people($2), group($3) }' <<<"$model")
    same "$what: table header" "total|records" "$(table_header <<<"$out")"
  fi
  same "$what: table" "$expected" "$(table_rows <<<"$out")"

  if [[ -n $by ]]; then
    expected=$(awk -F'|' -v by="$by" "$AWK_LIB"'BEGIN { print by ",total,records" }
      { printf "%s,%s,%d\n", csv($1), plain($2), $3 }' <<<"$model")
  else
    expected=$(awk -F'|' "$AWK_LIB"'BEGIN { print "total,records" } { printf "%s,%d\n", plain($2), $3 }' <<<"$model")
  fi
  same "$what: csv" "$expected" "$(csv_of "${args[@]}" --db "$store")"

  local json
  json=$(run "${args[@]}" --db "$store" --format json)
  jq -e --arg nb "$nb" --arg by "$by" --arg fy "$fy" --arg month "$month" --arg body "$body" \
    --arg service "$service" --arg pool "$pool" '
    def opt($v): if $v == "" then null else $v end;
    .query == "totals" and .neighbourhood == opt($nb) and .by == opt($by) and
    .fiscal_year == opt($fy) and .month == opt($month) and .body == opt($body) and
    .service == opt($service) and .poolable == opt($pool) and (.rows | type == "array") and
    all(.rows[]; (.amount_pence | type == "number") and (has("key") == ($by != "")))' \
    >/dev/null <<<"$json" || fail "$what: json shape: $json"
  if [[ -n $by ]]; then
    same "$what: json" "$model" "$(jq -r '.rows[] | "\(.key)|\(.amount_pence)|\(.records)"' <<<"$json")"
  else
    same "$what: json" "$model" "$(jq -r '.rows[] | "|\(.amount_pence)|\(.records)"' <<<"$json")"
  fi
}

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

# ---------------------------------------------------------------- pooling
# Expected "neighbourhood|body|total|poolable|records", neighbourhoods in ranked order.
pool_model=$(live | awk -F'|' '{ k = $4 "|" $1; t[k] += $7; n[k]++; if ($8 == "y") p[k] += $7 }
  END { for (k in t) printf "%s|%d|%d|%d\n", k, t[k], p[k] + 0, n[k] }' | sort -t'|' -k1,1 -k2,2)
pooling_expected() { # neighbourhood codes in order
  local nb
  for nb in "$@"; do awk -F'|' -v nb="$nb" '$1 == nb' <<<"$pool_model"; done
}
check_pooling() { # what model args...
  local what=$1 model=$2
  shift 2
  local out expected json
  out=$(run --db "$store" pooling "$@")
  same "$what: table header" "neighbourhood|body|total|poolable|share|records" "$(table_header <<<"$out")"
  expected=$(awk -F'|' "$AWK_LIB"'{ printf "%s|%s|%s|%s|%s|%s\n", $1, $2, people($3), people($4), share($4, $3, "%"), group($5) }' <<<"$model")
  same "$what: table" "$expected" "$(table_rows <<<"$out")"
  expected=$(awk -F'|' "$AWK_LIB"'BEGIN { print "neighbourhood,body,total,poolable,share,records" }
    { printf "%s,%s,%s,%s,%s,%d\n", $1, $2, plain($3), plain($4), share($4, $3, ""), $5 }' <<<"$model")
  same "$what: csv" "$expected" "$(csv_of pooling "$@" --db "$store")"
  expected=$(awk -F'|' "$AWK_LIB"'{ printf "%s|%s|%d|%d|%s|%d\n", $1, $2, $3, $4, ($3 > 0 ? permille($4, $3) : "null"), $5 }' <<<"$model")
  json=$(run pooling "$@" --format json --db "$store")
  jq -e '.query == "pooling" and (.rows | type == "array")' >/dev/null <<<"$json" ||
    fail "$what: json shape: $json"
  same "$what: json" "$expected" \
    "$(jq -r '.rows[] | "\(.neighbourhood)|\(.body)|\(.amount_pence)|\(.poolable_pence)|\(.poolable_share_permille)|\(.records)"' <<<"$json")"
}
mapfile -t ranked_codes < <(cut -d'|' -f1 <<<"$ranked")
all_pooling=$(pooling_expected "${ranked_codes[@]}")
[[ -n $(awk -F'|' '$3 <= 0' <<<"$all_pooling") ]] ||
  fail "model: the input no longer has a zero or negative total (share n/a)"
check_pooling "pooling (all)" "$all_pooling"
check_pooling "pooling E01000002" "$(pooling_expected E01000002)" --neighbourhood E01000002

# ---------------------------------------------------------------- record
check_record() { # body record
  local line
  line=$(awk -F'|' -v b="$1" -v r="$2" '$1 == b && $2 == r' "$work/live")
  [[ -n $line ]] || fail "model: no record $1/$2"
  local expected out json
  expected=$(awk -F'|' "$AWK_LIB"'{
    printf "body|%s\nrecord|%s\nrevision|%s\nneighbourhood|%s\nservice|%s\nperiod|%s\n", $1, $2, $3, $4, $5, $6
    printf "fiscal year|%s\namount|%s\npoolable|%s\n", fyear($6), people($7), ($8 == "y" ? "yes" : "no")
    printf "supplier%s\ndescription%s\nwithdrawn|%s\n", ($10 == "" ? "" : "|" $10), ($11 == "" ? "" : "|" $11), ($9 == "y" ? "yes" : "no")
  }' <<<"$line")
  out=$(run --db "$store" record "$1" "$2")
  same "record $1/$2: table" "$expected" "$(tail -n +3 <<<"$out" | sed -E 's/ {2,}/|/g')"
  expected=$(awk -F'|' "$AWK_LIB"'{
    print "body,record,revision,neighbourhood,service,period,fiscal year,amount,poolable,supplier,description,withdrawn"
    printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", csv($1), csv($2), $3, csv($4), csv($5), $6, fyear($6),
      plain($7), ($8 == "y" ? "yes" : "no"), csv($10), csv($11), ($9 == "y" ? "yes" : "no")
  }' <<<"$line")
  same "record $1/$2: csv" "$expected" "$(csv_of record "$1" "$2" --db "$store")"
  json=$(run --format json record --db "$store" "$1" "$2")
  same "record $1/$2: json" "$line" "$(jq -r '.record | [.body_id, .record_id, (.revision | tostring),
    .neighbourhood, .service, .period, (.amount_pence | tostring), (if .poolable then "y" else "n" end),
    (if .withdrawn then "y" else "n" end), .supplier, .description] | join("|")' <<<"$json")"
  jq -e --arg b "$1" --arg r "$2" '.query == "record" and .body_id == $b and .record_id == $r and
    (.record.amount_pence | type == "number")' >/dev/null <<<"$json" || fail "record $1/$2: json shape"
}
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
same "stats table counters" "$expected" "$(sed -n '3,9p' <<<"$out" | sed -E 's/ {2,}/|/g')"
same "stats table agents header" "agent|last batch|batches|last seen (UTC)" \
  "$(sed -n '14p' <<<"$out" | sed -E 's/ {2,}/|/g')"
agents_table=$(sed -n '16,$p' <<<"$out" | sed -E 's/ {2,}/|/g')
same "stats table agents" "agent-bns|7|1
agent-pol|3|1" "$(cut -d'|' -f1-3 <<<"$agents_table")"

json=$(run --db "$store" stats --format json)
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

csv=$(csv_of stats --db "$store")
same "stats csv counters header" \
  "batches,accepted,duplicate,superseded,stale,rejected,records stored,map size (bytes),used (bytes)" \
  "$(sed -n 1p <<<"$csv")"
same "stats csv counters" "2,$n_accepted,$n_duplicate,$n_superseded,$n_stale,$n_rejected,$n_stored" \
  "$(sed -n 2p <<<"$csv" | cut -d, -f1-7)"
same "stats csv map" "$(jq -r '.counters | "\(.map_size_bytes),\(.used_bytes)"' <<<"$json")" \
  "$(sed -n 2p <<<"$csv" | cut -d, -f8-9)"
same "stats csv agents" "
agent,last batch,batches,last seen (UTC)
$(jq -r '.agents[] | "\(.agent_id),\(.last_batch_seq),\(.batches),\(.last_seen)"' <<<"$json")" \
  "$(sed -n '3,$p' <<<"$csv")"

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
expect_failure 1 "not a totalplace store" --db "$work/empty" stats
expect_failure 1 "not a usable totalplace store" --db "$work/junk" neighbourhoods
expect_failure 1 "not a folder" --db "$work/junk.mdb" neighbourhoods
expect_failure 1 "No such file" --db "$work/missing" neighbourhoods
expect_failure 2 "Usage" neighbourhoods
expect_failure 2 "no store given" totals --by body
expect_failure 2 "Usage" --db "$store"
expect_failure 2 "unknown command" --db "$store" frobnicate
expect_failure 2 "unknown option --frob" --db "$store" stats --frob
expect_failure 2 "--month 2013-13" --db "$store" totals --month 2013-13
expect_failure 2 "--fiscal-year 2013-15" --db "$store" totals --fiscal-year 2013-15
expect_failure 2 "--by colour" --db "$store" totals --by colour
expect_failure 2 "--poolable maybe" --db "$store" totals --poolable maybe
expect_failure 2 "--format xml" --db "$store" --format xml stats
expect_failure 2 "does not apply to pooling" --db "$store" pooling --by body
expect_failure 2 "does not apply to stats" --db "$store" stats --neighbourhood E01000001
expect_failure 2 "given twice" --db "$store" totals --body A --body B
expect_failure 2 "record needs 2 arguments" --db "$store" record GB-LAE-BNS
expect_failure 2 "takes no arguments" --db "$store" stats extra
expect_failure 2 "not available yet: use --db" --collector tcp://127.0.0.1:1 stats
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
