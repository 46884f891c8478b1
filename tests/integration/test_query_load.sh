#!/usr/bin/env bash
# test_query_load: answers are never half a batch. Three tp_send processes push batches at full
# speed into one neighbourhood; in every batch nine records of +100 pence are cancelled by one of
# -900, and its records are spread over three bodies. So a batch applied whole adds 0 pence and 10
# records, and anything else shows. Meanwhile the real CLI asks over and over, through the query
# endpoint and from the store: every answer must show a total of 0 over a multiple of 10 records,
# a breakdown by body must add up to that, and the answers must see the totals grow. At the end
# the totals are exactly the batches the collector acknowledged.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is required to read the JSON answers (apt-get install jq)"
export LC_ALL=C
SEND=$BIN/tests/tp_send
[[ -x $SEND ]] || fail "no tp_send at $SEND"
seconds=${TOTALPLACE_LOAD_SECONDS:-8}
senders=3
batches_per_run=200
nbh=E01000009

start_collector
wait_for 20 "the collector's query socket" test -S "$WORK/query.sock"

# sender N: runs tp_send again and again (fresh record ids each time) until $WORK/stop appears.
sender() {
  local n=$1 run=0
  while [[ ! -e $WORK/stop ]]; do
    "$SEND" "$INGEST" --agent "load-$n" --seq $((run * batches_per_run + 1)) \
      --batches "$batches_per_run" --records 10 --amount 100 --balanced --bodies 3 \
      --body "GB-LOAD$n" --neighbourhood "$nbh" --service "Load test" --period 2020-05 \
      --first-record $((n * 100000000 + run * batches_per_run * 10)) --timeout 20000 \
      >>"$WORK/sender-$n.out" 2>>"$WORK/sender-$n.log" || { echo "exit $?" >>"$WORK/sender-$n.log"; return 1; }
    run=$((run + 1))
  done
}
for n in $(seq 1 $senders); do
  sender "$n" &
  PIDS[sender$n]=$!
done

# Both ways, in turn. CSV amounts are pounds: "0.00" is the only whole-batch total.
check_total() { # source: the neighbourhood's total, one row
  local out amount records
  out=$(timeout 30 "$CLI" "$1" --format csv totals --neighbourhood "$nbh" 2>"$WORK/cli.err") || {
    # Before the first batch lands the neighbourhood does not exist yet.
    grep -q "has no records" "$WORK/cli.err" && return 0
    fail "totals $1: $(cat "$WORK/cli.err")"
  }
  IFS=, read -r amount records < <(sed -n 2p <<<"$out" | tr -d '\r')
  [[ $amount == 0.00 ]] && ((records % 10 == 0)) ||
    fail "totals $1 shows part of a batch: $amount pounds over $records records"
  echo "$records" >>"$WORK/seen"
}
check_by_body() { # source: a breakdown by body adds up to whole batches
  local out
  out=$(timeout 30 "$CLI" "$1" --format json totals --neighbourhood "$nbh" --by body 2>"$WORK/cli.err") || {
    grep -q "has no records" "$WORK/cli.err" && return 0
    fail "totals --by body $1: $(cat "$WORK/cli.err")"
  }
  jq -e '([.rows[].amount_pence] | add) == 0 and (([.rows[].records] | add) % 10) == 0 and
    (.rows | length) >= 3' >/dev/null <<<"$out" ||
    fail "totals --by body $1 shows part of a batch: $(jq -c .rows <<<"$out")"
  jq -r '[.rows[].records] | add' <<<"$out" >>"$WORK/seen"
}
check_ranking() { # source: the neighbourhood's row in the ranking
  local out row
  out=$(timeout 30 "$CLI" "$1" --format csv neighbourhoods) || fail "neighbourhoods $1 failed"
  row=$(tr -d '\r' <<<"$out" | gawk -F, -v n="$nbh" '$2 == n { print $3 "," $4 }')
  [[ -z $row ]] && return 0
  [[ ${row%,*} == 0.00 ]] && ((${row#*,} % 10 == 0)) ||
    fail "neighbourhoods $1 shows part of a batch: $row"
}
check_stats() { # through the endpoint: whole batches in the counters too
  local out
  out=$(timeout 30 "$CLI" --collector "$QUERY" --format json stats) || fail "stats failed"
  jq -e '.counters.records_stored % 10 == 0 and .ingest.records % 10 == 0 and
    .ingest.records == .ingest.batches * 10' >/dev/null <<<"$out" ||
    fail "stats shows part of a batch: $(jq -c '{counters, ingest}' <<<"$out")"
}

: >"$WORK/seen"
deadline=$((SECONDS + seconds))
asked=0
while ((SECONDS < deadline)); do
  for source in "--collector=$QUERY" "--db=$WORK/collector"; do
    check_total "$source"
    check_by_body "$source"
    check_ranking "$source"
    asked=$((asked + 3))
  done
  check_stats
  asked=$((asked + 1))
done
touch "$WORK/stop"
for n in $(seq 1 $senders); do # each finishes its run: every batch it sent is acknowledged
  wait "${PIDS[sender$n]}" || fail "sender $n failed: $(tail -n 3 "$WORK/sender-$n.log")"
  unset "PIDS[sender$n]"
done

distinct=$(sort -u "$WORK/seen" | wc -l)
note "$asked answers while ingesting, $distinct distinct record counts seen, every one whole batches"
((distinct >= 5)) || fail "the answers saw only $distinct states: they did not overlap ingest"

# Afterwards: exactly the acknowledged batches, both ways.
acked=$(cat "$WORK"/sender-*.out | grep -c "status=APPLIED accepted=10 " || true)
((acked > 0)) || fail "no batch was acknowledged"
for source in "--collector=$QUERY" "--db=$WORK/collector"; do
  out=$(timeout 30 "$CLI" "$source" --format csv totals --neighbourhood "$nbh" | sed -n 2p | tr -d '\r')
  same_total="0.00,$((acked * 10))"
  [[ $out == "$same_total" ]] || fail "after the load $source shows $out, expected $same_total"
done
note "$acked batches acknowledged, $((acked * 10)) records, total 0.00 both ways"
stop collector || fail "the collector did not stop cleanly"
echo "test_query_load: all checks passed"
