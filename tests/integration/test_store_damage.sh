#!/usr/bin/env bash
# test_store_damage: one flipped bit in a record, in a cell total and in a neighbourhood total of a
# real store file (tp_flip, the collector stopped), each found by every reader: `totalplace --db`
# reading it fails naming the database and the key, exits 65 and prints no total; `totalplace
# verify` lists it and exits 65; the real collector, when a sender delivers a record touching it,
# answers ACK_RETRY (never APPLIED), logs the damage at error level with what to do, applies
# nothing, takes no other batch either, and keeps running; damage a question meets (in the query
# thread) is logged at once and stops the batches just the same. A backup of a damaged store is refused
# and leaves nothing behind.
source "$(dirname "$0")/lib.sh"

SEND=$BIN/tests/tp_send
FLIP=$BIN/tests/tp_flip
[[ -x $SEND && -x $FLIP ]] || fail "tp_send and tp_flip must be built"

# ---------------------------------------------------------------- a sound store, three neighbourhoods
start_collector
for n in 1 2 3; do
  "$SEND" "$INGEST" --agent sender --seq "$n" --records 100 --first-record $((n * 1000)) \
    --neighbourhood "E0100000$n" --amount $((n * 100)) >"$WORK/send$n.out" ||
    fail "tp_send failed: $(cat "$WORK/send$n.out")"
  grep -q 'status=APPLIED accepted=100 ' "$WORK/send$n.out" || fail "batch $n not applied: $(cat "$WORK/send$n.out")"
done
stop collector || fail "the collector did not stop cleanly"
"$CLI" --db "$WORK/collector" verify >"$WORK/verify-sound.out" || fail "a sound store does not verify: $(cat "$WORK/verify-sound.out")"
grep -qE '^result +clean$' "$WORK/verify-sound.out" || fail "verify of a sound store: $(cat "$WORK/verify-sound.out")"
store_id=$(cat "$WORK/store-id")

CELL2="2023-04|E01000002|GB-TEST|adult-social-care|N"
# damaged_copy NAME DATABASE KEY: a copy of the store with one bit of that value flipped.
damaged_copy() {
  cp -r "$WORK/collector" "$WORK/$1"
  rm -f "$WORK/$1/lock.mdb"
  "$FLIP" "$WORK/$1" "$2" "$3" >/dev/null || fail "tp_flip $2 $3 failed"
  cmp -s "$WORK/collector/data.mdb" "$WORK/$1/data.mdb" && fail "tp_flip changed nothing in $1"
  return 0
}
damaged_copy record records "GB-TEST|R00002050"
damaged_copy cell cells "$CELL2"
damaged_copy nbh neighbourhoods E01000003

# read_fails DIR DATABASE KEY ARGS...: `totalplace --db DIR ARGS` exits 65, prints nothing on
# stdout (no total at all rather than a wrong one) and names the database and the key.
read_fails() {
  local name=$1 dir=$WORK/$1 database=$2 key=$3 status=0
  shift 3
  "$CLI" --db "$dir" "$@" >"$WORK/read.out" 2>"$WORK/read.err" || status=$?
  ((status == 65)) || fail "totalplace --db $dir $*: exit $status, expected 65: $(cat "$WORK/read.err")"
  [[ ! -s $WORK/read.out ]] || fail "totalplace --db $dir $* printed an answer from a damaged store: $(cat "$WORK/read.out")"
  grep -qF "the value of key \"$key\" in database \"$database\" fails its checksum" "$WORK/read.err" ||
    fail "totalplace --db $dir $*: the message does not name $database and $key: $(cat "$WORK/read.err")"
  grep -qF "totalplace verify --db $dir" "$WORK/read.err" || fail "the message does not say to verify: $(cat "$WORK/read.err")"
  note "$name: totalplace $* refused: $(cut -c1-100 "$WORK/read.err")..."
}
read_fails record records "GB-TEST|R00002050" record GB-TEST R00002050
read_fails cell cells "$CELL2" totals --neighbourhood E01000002
read_fails cell cells "$CELL2" totals --by neighbourhood
read_fails nbh neighbourhoods E01000003 neighbourhoods
read_fails nbh neighbourhoods E01000003 totals --neighbourhood E01000003
# What the damage does not touch still answers, exactly.
"$CLI" --db "$WORK/cell" --format csv totals --neighbourhood E01000001 >"$WORK/sound.out" ||
  fail "a sound neighbourhood of the damaged store cannot be read"
[[ $(sed -n 2p "$WORK/sound.out" | tr -d '\r') == "100.00,100" ]] || fail "E01000001 of the damaged store: $(cat "$WORK/sound.out")"

# verify_finds DIR DATABASE KEY: verify exits 65 and lists the damaged value.
verify_finds() {
  local dir=$WORK/$1 status=0
  "$CLI" --db "$dir" --format csv verify >"$WORK/verify.out" 2>"$WORK/verify.err" || status=$?
  ((status == 65)) || fail "verify of $dir: exit $status, expected 65: $(cat "$WORK/verify.err")"
  grep -F "damaged,$2,$3," "$WORK/verify.out" | grep -q ",fails its checksum" ||
    fail "verify of $dir does not list $2 $3 as damaged: $(cat "$WORK/verify.out")"
  grep -q "^differs," "$WORK/verify.out" || fail "verify of $dir does not sum up as differs: $(cat "$WORK/verify.out")"
  grep -qF "the store in $dir differs" "$WORK/verify.err" || fail "verify of $dir says nothing on stderr"
  note "$1: verify lists $2 $3"
}
verify_finds record records "GB-TEST|R00002050"
verify_finds cell cells "$CELL2"
verify_finds nbh neighbourhoods E01000003
grep -q "E01000002" "$WORK/verify.out" && fail "verify of nbh blames E01000002: $(cat "$WORK/verify.out")"
# The damaged record no longer counts: its cell and neighbourhood now differ from what the
# readable records make, with both values.
"$CLI" --db "$WORK/record" --format csv verify >"$WORK/verify.out" 2>/dev/null || true
grep -qF "different,neighbourhoods,E01000002,200.00 (100 records),198.00 (99 records)," "$WORK/verify.out" ||
  fail "verify of record does not show E01000002's total against its readable records: $(cat "$WORK/verify.out")"
grep -qF "different,cells,$CELL2,200.00 (100 records),198.00 (99 records)," "$WORK/verify.out" ||
  fail "verify of record does not show the cell against its readable records: $(cat "$WORK/verify.out")"

# ---------------------------------------------------------------- the collector meets it
# collector_refuses NAME DESCRIPTION TP_SEND_ARGS...: the collector on the damaged copy answers
# RETRY to a batch touching the damage, logs it, applies nothing, and takes no other batch.
collector_refuses() {
  local name=$1 what=$2
  shift 2
  rm -f "$WORK/ingest.sock" "$WORK/query.sock"
  "${RUN[@]}" "$COLLECTOR" --state-dir "$WORK/$name" --ingest "$INGEST" --query "$QUERY" --allow-plain \
    >"$WORK/$name.log" 2>&1 &
  PIDS[$name]=$!
  wait_for 20 "the collector on $name" test -S "$WORK/ingest.sock"
  if ((${#QUESTION[@]})); then
    # A question meets the damage first, in the query thread: the collector says so at once.
    "$CLI" --collector "$QUERY" "${QUESTION[@]}" >"$WORK/$name-question.out" 2>&1 &&
      fail "$name: the collector answered ${QUESTION[*]} from a damaged value: $(cat "$WORK/$name-question.out")"
    grep -qF "is damaged" "$WORK/$name-question.out" || fail "$name: the answer does not say damaged: $(cat "$WORK/$name-question.out")"
    wait_for 10 "the collector to log the damage a question met" \
      grep -qE "^[^ ]+Z E .*the store in $WORK/$name is damaged \(the value of key .* fails its checksum\): no batch is applied" "$WORK/$name.log"
  fi
  "$SEND" "$INGEST" --agent sender --seq 10 --timeout $((10000 * TIME_SCALE)) "$@" >"$WORK/$name-send.out" ||
    fail "tp_send to the collector on $name: $(cat "$WORK/$name-send.out")"
  grep -q 'status=RETRY' "$WORK/$name-send.out" || fail "$name: $what was not answered RETRY: $(cat "$WORK/$name-send.out")"
  grep -q 'status=APPLIED' "$WORK/$name-send.out" && fail "$name: $what was applied"
  # Sticky: a batch far from the damage is refused too.
  "$SEND" "$INGEST" --agent other --seq 1 --records 5 --neighbourhood E01009999 --first-record 90000 \
    --timeout $((10000 * TIME_SCALE)) >"$WORK/$name-send2.out" || fail "tp_send: $(cat "$WORK/$name-send2.out")"
  grep -q 'status=RETRY' "$WORK/$name-send2.out" || fail "$name: a batch after the damage was not refused: $(cat "$WORK/$name-send2.out")"
  kill -0 "${PIDS[$name]}" || fail "the collector on $name died"
  grep -E '^[^ ]+Z E .*STORE DAMAGED storing 1 batches' "$WORK/$name.log" | head -n 1 | grep -qF "in database" ||
    fail "$name: no error line naming the damage: $(cat "$WORK/$name.log")"
  grep -qF "it takes no batch until it is restored. Run \`totalplace verify --db $WORK/$name\`, then restore the store from a backup (docs/operations.md)" "$WORK/$name.log" ||
    fail "$name: the log does not say what to do: $(cat "$WORK/$name.log")"
  stop "$name" || fail "the collector on $name did not stop cleanly"
  # Nothing was applied: the counters and the records are those of before.
  "$CLI" --db "$WORK/$name" --format csv stats >"$WORK/$name-stats.out" 2>&1 || true
  gawk -F, '$1 == "batches" { h = NR } h && NR == h + 1 { exit !($1 == 3 && $7 == 300) }' "$WORK/$name-stats.out" ||
    fail "$name: the store changed while damaged: $(cat "$WORK/$name-stats.out")"
  note "$name: the collector answered RETRY to $what and to anything after, and logged it"
}
QUESTION=()
collector_refuses record "the damaged record sent again" --records 1 --first-record 2050 \
  --neighbourhood E01000002 --amount 200
QUESTION=(totals --neighbourhood E01000002)
collector_refuses cell "a new record in the damaged cell" --records 1 --first-record 7000 \
  --neighbourhood E01000002
QUESTION=()
collector_refuses nbh "a new record in the damaged neighbourhood" --records 1 --first-record 7000 \
  --neighbourhood E01000003 --period 2023-05

# ---------------------------------------------------------------- no backup of a damaged store
status=0
"$CLI" --db "$WORK/cell" backup "$WORK/cell-backup" >"$WORK/backup.out" 2>"$WORK/backup.err" || status=$?
((status == 65)) || fail "backup of a damaged store: exit $status, expected 65: $(cat "$WORK/backup.err")"
[[ ! -e $WORK/cell-backup ]] || fail "backup of a damaged store left $WORK/cell-backup"
ls -a "$WORK" | grep -q 'partial' && fail "backup of a damaged store left a partial folder: $(ls -a "$WORK")"
grep -qF "the copy does not verify" "$WORK/backup.err" || fail "backup of a damaged store: $(cat "$WORK/backup.err")"
[[ $("$CLI" --db "$WORK/collector" --format csv stats | gawk -F, 'NR == 2 { print $1 }') == "$store_id" ]] ||
  fail "the sound store's id changed"
echo "1 passed, 0 failed"
