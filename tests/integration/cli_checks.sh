# cli_checks.sh: checks of the totalplace CLI's answers, in every format, against a model of the
# records computed here by awk, independently of the C code. Shared by test_cli_db.sh (--db) and
# test_query_endpoint.sh (--db and --collector). Source it after setting
#   cli       the totalplace binary
#   work      a scratch folder
#   SOURCES   an array of source options such as (--db=DIR --collector=ENDPOINT): every question
#             is asked of each, and the answers must be the same byte for byte
# and define fail MESSAGE. Then build the model with model_apply, reading record lines in the order
# the store received them:
#   body|record|revision|neighbourhood|service|period|amount_pence|poolable|withdrawn|supplier|description
# (poolable and withdrawn are y or n), and call the check_ functions.

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

# model_apply < LINES: store semantics, applied line by line: invalid period -> rejected; new key ->
# accepted; lower revision -> stale; same revision and content -> duplicate; same revision, other
# content -> rejected (a conflict); higher revision -> superseded. Writes each line's outcome to
# $work/model_outcomes, the counters to $work/counters (accepted|duplicate|superseded|stale|
# rejected|stored) and the final version of every stored key (withdrawn ones too) to $work/live.
model_apply() {
  : >"$work/live"
  awk -F'|' -v counters="$work/counters" -v live="$work/live" '
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
}

# Records counting in the totals: the final version of each key, unless withdrawn.
live() { awk -F'|' '$9 != "y"' "$work/live"; }

# ask ARGS...: asks every source (never allowed to hang), fails unless each exits 0 and all
# answer alike; prints the answer. The source option goes last (the CLI takes global options
# anywhere), or first when ARGS hold "--".
ask() {
  local source out first="" have_first=0 position=last arg
  for arg in "$@"; do [[ $arg == -- ]] && position=first; done
  for source in "${SOURCES[@]}"; do
    if [[ $position == first ]]; then
      out=$(timeout 30 "$cli" "$source" "$@") || fail "totalplace $source $* exited $?"
    else
      out=$(timeout 30 "$cli" "$@" "$source") || fail "totalplace $* $source exited $?"
    fi
    if ((have_first)); then
      [[ $out == "$first" ]] || fail "totalplace $*: $source answers differently from ${SOURCES[0]}:
$(diff <(printf '%s\n' "$first") <(printf '%s\n' "$out"))"
    else
      first=$out
      have_first=1
    fi
  done
  printf '%s\n' "$first"
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
  local raw lines crlf
  raw=$(ask --format csv "$@")
  lines=$(printf '%s\n' "$raw" | wc -l)
  crlf=$(printf '%s\n' "$raw" | grep -c $'\r$' || true)
  [[ $lines == "$crlf" ]] || fail "totalplace --format csv $*: $((lines - crlf)) lines without CRLF"
  printf '%s\n' "$raw" | tr -d '\r'
}

# ---------------------------------------------------------------- neighbourhoods
# ranked_model: "code|pence|records" of every live neighbourhood, largest total first.
ranked_model() {
  live | awk -F'|' '{ a[$4] += $7; n[$4]++ } END { for (k in a) printf "%s|%d|%d\n", k, a[k], n[k] }' |
    sort -t'|' -k2,2nr -k1,1
}

check_neighbourhoods() {
  local ranked expected out json
  ranked=$(ranked_model)
  expected=$(printf '%s\n' "$ranked" | awk -F'|' "$AWK_LIB"'{ printf "%d|%s|%s|%s\n", NR, $1, people($2), group($3) }')
  out=$(ask neighbourhoods)
  same "neighbourhoods table header" "rank|neighbourhood|total|records" "$(table_header <<<"$out")"
  same "neighbourhoods table" "$expected" "$(table_rows <<<"$out")"

  expected=$(printf '%s\n' "$ranked" | awk -F'|' "$AWK_LIB"'BEGIN { print "rank,neighbourhood,total,records" }
    { printf "%d,%s,%s,%d\n", NR, csv($1), plain($2), $3 }')
  same "neighbourhoods csv" "$expected" "$(csv_of neighbourhoods)"

  expected=$(printf '%s\n' "$ranked" | awk -F'|' '{ printf "%d|%s|%s|%s\n", NR, $1, $2, $3 }')
  json=$(ask neighbourhoods --format json)
  jq -e '.query == "neighbourhoods" and (.rows | type == "array")' >/dev/null <<<"$json" ||
    fail "neighbourhoods json shape: $json"
  jq -e 'all(.rows[]; (.amount_pence | type == "number") and (.amount_pence | floor) == .amount_pence)' \
    >/dev/null <<<"$json" || fail "neighbourhoods json: amounts must be integers"
  same "neighbourhoods json" "$expected" \
    "$(jq -r '.rows[] | "\(.rank)|\(.neighbourhood)|\(.amount_pence)|\(.records)"' <<<"$json")"
}

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
  out=$(ask "${args[@]}")
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
  same "$what: csv" "$expected" "$(csv_of "${args[@]}")"

  local json
  json=$(ask "${args[@]}" --format json)
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

# ---------------------------------------------------------------- pooling
# pooling_expected CODE...: "neighbourhood|body|total|poolable|records" of those neighbourhoods,
# in the order given, bodies in code order.
pooling_expected() {
  local nb pool_model
  pool_model=$(live | awk -F'|' '{ k = $4 "|" $1; t[k] += $7; n[k]++; if ($8 == "y") p[k] += $7 }
    END { for (k in t) printf "%s|%d|%d|%d\n", k, t[k], p[k] + 0, n[k] }' | sort -t'|' -k1,1 -k2,2)
  for nb in "$@"; do awk -F'|' -v nb="$nb" '$1 == nb' <<<"$pool_model"; done
}

check_pooling() { # what model args...
  local what=$1 model=$2
  shift 2
  local out expected json
  out=$(ask pooling "$@")
  same "$what: table header" "neighbourhood|body|total|poolable|share|records" "$(table_header <<<"$out")"
  expected=$(awk -F'|' "$AWK_LIB"'{ printf "%s|%s|%s|%s|%s|%s\n", $1, $2, people($3), people($4), share($4, $3, "%"), group($5) }' <<<"$model")
  same "$what: table" "$expected" "$(table_rows <<<"$out")"
  expected=$(awk -F'|' "$AWK_LIB"'BEGIN { print "neighbourhood,body,total,poolable,share,records" }
    { printf "%s,%s,%s,%s,%s,%d\n", $1, $2, plain($3), plain($4), share($4, $3, ""), $5 }' <<<"$model")
  same "$what: csv" "$expected" "$(csv_of pooling "$@")"
  expected=$(awk -F'|' "$AWK_LIB"'{ printf "%s|%s|%d|%d|%s|%d\n", $1, $2, $3, $4, ($3 > 0 ? permille($4, $3) : "null"), $5 }' <<<"$model")
  json=$(ask --format json pooling "$@")
  jq -e '.query == "pooling" and (.rows | type == "array")' >/dev/null <<<"$json" ||
    fail "$what: json shape: $json"
  same "$what: json" "$expected" \
    "$(jq -r '.rows[] | "\(.neighbourhood)|\(.body)|\(.amount_pence)|\(.poolable_pence)|\(.poolable_share_permille)|\(.records)"' <<<"$json")"
}

# check_all_pooling: every neighbourhood in ranked order, then each one on its own.
check_all_pooling() {
  local ranked_codes nb
  mapfile -t ranked_codes < <(ranked_model | cut -d'|' -f1)
  check_pooling "pooling (all)" "$(pooling_expected "${ranked_codes[@]}")"
  for nb in "${ranked_codes[@]}"; do
    check_pooling "pooling $nb" "$(pooling_expected "$nb")" --neighbourhood "$nb"
  done
}

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
  out=$(ask record "$1" "$2")
  same "record $1/$2: table" "$expected" "$(tail -n +3 <<<"$out" | sed -E 's/ {2,}/|/g')"
  expected=$(awk -F'|' "$AWK_LIB"'{
    print "body,record,revision,neighbourhood,service,period,fiscal year,amount,poolable,supplier,description,withdrawn"
    printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", csv($1), csv($2), $3, csv($4), csv($5), $6, fyear($6),
      plain($7), ($8 == "y" ? "yes" : "no"), csv($10), csv($11), ($9 == "y" ? "yes" : "no")
  }' <<<"$line")
  same "record $1/$2: csv" "$expected" "$(csv_of record "$1" "$2")"
  json=$(ask --format json record "$1" "$2")
  same "record $1/$2: json" "$line" "$(jq -r '.record | [.body_id, .record_id, (.revision | tostring),
    .neighbourhood, .service, .period, (.amount_pence | tostring), (if .poolable then "y" else "n" end),
    (if .withdrawn then "y" else "n" end), .supplier, .description] | join("|")' <<<"$json")"
  jq -e --arg b "$1" --arg r "$2" '.query == "record" and .body_id == $b and .record_id == $r and
    (.record.amount_pence | type == "number")' >/dev/null <<<"$json" || fail "record $1/$2: json shape"
}
