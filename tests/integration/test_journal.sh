#!/usr/bin/env bash
# test_journal: under load the collector acknowledges groups once they are synced in the store's
# journal, and commits its LMDB transaction later (docs/architecture.md, "Decision: a journal under
# load"). Here the commit is held off (a journal of a million records and ten minutes) so that
# everything acknowledged lives only in the journal, and the collector is killed with kill -9 in
# the middle of delivery, three times: every acknowledged batch and its totals must be in the store
# after the restart, whole batches only (each batch adds 1,000 records and 0 pence); readers see
# nothing of the journal before that. A cut last entry (a crash in the middle of a write) is
# ignored; a damaged entry with more after it, a journal of another store and one that does not
# follow the store (a data.mdb restored from a copy) are refused, loudly, changing nothing. Last,
# every batch sent again gives exactly the totals of sending each once.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is required (deploy/install-deps.sh installs it)"
SEND=$BIN/tests/tp_send
[[ -x $SEND ]] || fail "tp_send must be built"
HOLD=(-o collector/journal_records=1000000 -o collector/journal_ms=600000 -o collector/max_group_records=2000)
K=1000       # records per batch
BATCHES=150  # per run
nbh=E01000077

# send RUN: one run of batches (their own record ids and seqs), back to back, in the background.
send() {
  local run=$1
  "$SEND" "$INGEST" --agent journal-test --seq $((run * BATCHES + 1)) --batches "$BATCHES" \
    --records "$K" --amount 100 --balanced --neighbourhood "$nbh" \
    --first-record $((run * BATCHES * K)) --timeout 3000 >"$WORK/send$run.out" 2>"$WORK/send$run.log" &
  SENDER=$!
}

# grand: "pence,records" of every record in the store, as the CLI reads it (committed state).
grand() {
  "$CLI" --db "$WORK/collector" --format csv totals 2>/dev/null | tr -d '\r' | gawk -F, 'NR == 2 { p = $1; gsub(/[^0-9-]/, "", p); print p + 0 "," $2 }'
}
journal_bytes() { stat -c %s "$WORK/collector/journal" 2>/dev/null || echo 0; }

start_collector "${HOLD[@]}"
acked_total=0
for run in 0 1 2; do
  send "$run"
  # A few groups in the journal, then the crash.
  wait_for 30 "groups in the journal" bash -c "(( \$(stat -c %s '$WORK/collector/journal') > 3000000 ))"
  stop collector KILL || true
  wait "$SENDER" || true
  acked=$(grep -c 'status=APPLIED' "$WORK/send$run.out" || true)
  last=$(grep 'status=APPLIED' "$WORK/send$run.out" | sed -E 's/.*seq=([0-9]+) .*/\1/' | sort -n | tail -n 1)
  ((acked > 0 && acked < BATCHES)) || fail "run $run: $acked of $BATCHES batches acknowledged before the kill; the test proves nothing"
  acked_total=$((acked_total + acked))
  note "run $run: $acked batches acknowledged (the last $last), journal $(journal_bytes) bytes at the kill"
  before=$(grand)
  [[ ${before%,*} == 0 && $((${before#*,} % K)) == 0 ]] ||
    fail "before the restart, a reader sees $before: part of a batch"
  cp -r "$WORK/collector" "$WORK/crashed$run" # for the refusals below
  rm -f "$WORK/crashed$run/lock.mdb"

  start_collector "${HOLD[@]}"
  stop collector TERM || fail "the collector did not stop cleanly after replaying its journal"
  got=$(grand)
  pence=${got%,*} records=${got#*,}
  ((pence == 0)) || fail "run $run: the store holds $pence pence: part of a batch (each adds 0 pence)"
  ((records % K == 0)) || fail "run $run: the store holds $records records, not whole batches of $K"
  ((records >= acked_total * K)) || fail "run $run: $acked_total batches acknowledged, the store holds $((records / K))"
  mark=$("$CLI" --db "$WORK/collector" --format json stats | jq -r '.agents[] | select(.agent_id == "journal-test") | .last_batch_seq')
  ((mark >= last)) || fail "run $run: the agent's mark is $mark after batch $last was acknowledged"
  [[ $(journal_bytes) -le 16 ]] || fail "the journal was not emptied once its groups were committed ($(journal_bytes) bytes)"
  acked_total=$((records / K))
  note "run $run: after the restart the store holds $((records / K)) whole batches, mark $mark"
  start_collector "${HOLD[@]}"
done
stop collector TERM || fail "the collector did not stop cleanly"

# ---------------------------------------------------------------- journals that must not be read
copy=$WORK/crashed2
[[ $(stat -c %s "$copy/journal") -gt 3000000 ]] || fail "the copy's journal is empty"
# A cut last entry: what a crash in the middle of a write leaves. Ignored; the rest is applied.
cp -r "$copy" "$WORK/torn"
printf 'TPJE\377\377\000\000partial' >>"$WORK/torn/journal"
"$COLLECTOR" --state-dir "$WORK/torn" --ingest "ipc://$WORK/torn.sock" --query "" --allow-plain >"$WORK/torn.log" 2>&1 &
PIDS[torn]=$!
wait_for 30 "the collector on a journal with a cut end" test -S "$WORK/torn.sock"
stop torn || fail "the collector on a journal with a cut end did not stop cleanly: $(cat "$WORK/torn.log")"
# It holds what the collector's own restart after the third kill made of the same journal.
[[ $("$CLI" --db "$WORK/torn" --format csv totals | tr -d '\r' | gawk -F, 'NR == 2 { print $2 }') == "$(grand | cut -d, -f2)" ]] ||
  fail "the journal with a cut end did not give what its restart gave"
"$CLI" --db "$WORK/torn" verify >/dev/null || fail "the store replayed from a journal with a cut end does not verify"

# refused DIR STATUS TEXT: the collector exits STATUS naming TEXT, and leaves data.mdb and the
# journal as they were.
refused() {
  local dir=$1 want=$2 text=$3 status=0 before
  before=$(sha256sum "$dir/data.mdb" "$dir/journal")
  "$COLLECTOR" --state-dir "$dir" --ingest "ipc://$WORK/refused.sock" --query "" --allow-plain >"$WORK/refused.log" 2>&1 || status=$?
  ((status == want)) || fail "collector on $dir: exit $status, expected $want: $(cat "$WORK/refused.log")"
  grep -qF -- "$text" "$WORK/refused.log" || fail "collector on $dir: the log lacks \"$text\": $(cat "$WORK/refused.log")"
  [[ $(sha256sum "$dir/data.mdb" "$dir/journal") == "$before" ]] || fail "collector on $dir changed the store or its journal while refusing it"
  note "refused ($want): $(grep -oF -- "$text" "$WORK/refused.log" | head -n 1)"
}
# A damaged entry with more after it: the first entry's payload, one bit.
cp -r "$copy" "$WORK/damaged"
printf '\001' | dd of="$WORK/damaged/journal" bs=1 seek=100 conv=notrunc status=none
refused "$WORK/damaged" 65 "is damaged at byte 16 (more entries follow)"
# The journal of another store.
"$COLLECTOR" init --state-dir "$WORK/other" >/dev/null 2>&1 || fail "init failed"
cp "$copy/journal" "$WORK/other/journal"
refused "$WORK/other" 65 "is not this store's"
# A data.mdb older than its journal, as a restore would leave it.
cp -r "$WORK/crashed0" "$WORK/restored"
cp "$copy/journal" "$WORK/restored/journal"
refused "$WORK/restored" 78 "does not follow it"

# ---------------------------------------------------------------- everything sent again
start_collector
for run in 0 1 2; do
  "$SEND" "$INGEST" --agent journal-test --seq $(((run + 3) * BATCHES + 1)) --batches "$BATCHES" \
    --records "$K" --amount 100 --balanced --neighbourhood "$nbh" \
    --first-record $((run * BATCHES * K)) --timeout 20000 >"$WORK/again$run.out" ||
    fail "sending run $run again failed: $(tail -n 3 "$WORK/again$run.out")"
  [[ $(grep -c 'status=APPLIED' "$WORK/again$run.out") == "$BATCHES" ]] || fail "run $run sent again: not every batch applied"
done
stop collector TERM || fail "the collector did not stop cleanly"
[[ $(grand) == "0,$((3 * BATCHES * K))" ]] || fail "after sending everything again the store holds $(grand), not 0,$((3 * BATCHES * K))"
"$CLI" --db "$WORK/collector" verify >"$WORK/verify.out" || fail "the store does not verify: $(cat "$WORK/verify.out")"
echo "1 passed, 0 failed"
