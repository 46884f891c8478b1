#!/usr/bin/env bash
# test_backup: `totalplace backup` while real agents deliver to the real collector: each backup is
# a consistent, verified copy taken in the middle of delivery (fewer records than the end), opens
# as the same store (same store id) and verifies clean; delivery goes on undisturbed and the totals
# equal the independent reference exactly. A backup never goes over anything (exit 73). The
# rotation (--into --keep) keeps the newest N of its own folders and nothing else is touched. A
# backup restored in place of the store (stop, replace the folder, start) is the same store.
source "$(dirname "$0")/lib.sh"
bash "$SRC/tests/integration/make_exports.sh" "$WORK/csv" 6000 23
BODIES="GB-LAE-BNS GB-NHS-RFF GB-PF-SYP"
# Small batches, one in flight: delivery takes many round trips, so backups land in the middle.
SLOW=(--set agent/batch_records=10 --set agent/window=1)

start_collector
store_id=$(cat "$WORK/store-id")
drop council "$WORK/csv/council.csv"
drop nhs "$WORK/csv/nhs.csv"
drop police "$WORK/csv/police.csv"
start_agent council GB-LAE-BNS "${SLOW[@]}"
start_agent nhs GB-NHS-RFF "${SLOW[@]}"
start_agent police GB-PF-SYP "${SLOW[@]}"

# backup_during NAME: a backup to $WORK/NAME while the agents deliver; prints its records.
backup_during() {
  "$CLI" --db "$WORK/collector" --format csv backup "$WORK/$1" >"$WORK/$1.out" 2>"$WORK/$1.err" ||
    fail "backup to $WORK/$1 during delivery failed (exit $?): $(cat "$WORK/$1.err")"
  [[ -f $WORK/$1/data.mdb ]] || fail "backup $1 made no data.mdb"
  [[ $(ls -A "$WORK/$1") == data.mdb ]] || fail "backup $1 holds more than data.mdb: $(ls -A "$WORK/$1")"
  gawk -F, '$1 == "backup" { h = NR } h && NR == h + 1 { print $4 }' "$WORK/$1.out" | tr -d '\r'
}
wait_for 30 "the first records to arrive" more_than 200
first=$(backup_during backup1)
wait_for 30 "more records to arrive" more_than $((first + 500))
second=$(backup_during backup2)
note "backups taken during delivery: $first, then $second records"

for name in council nhs police; do
  stop "$name" TERM || fail "agent $name did not exit 0 on SIGTERM"
  drain_agent "$name" "$(case $name in council) echo GB-LAE-BNS ;; nhs) echo GB-NHS-RFF ;; police) echo GB-PF-SYP ;; esac)"
done
check_totals "$BODIES" "$WORK/csv/council.csv" "$WORK/csv/nhs.csv" "$WORK/csv/police.csv"
final=$(stored_records)
((first > 0 && first < second && second < final)) ||
  fail "the backups were not taken during delivery ($first, $second of $final records): the test proves nothing"

# records_in DIR: the records a store holds, from its stats.
records_in() {
  "$CLI" --db "$1" --format csv stats | tr -d '\r' |
    gawk -F, '$1 == "batches" { h = NR } h && NR == h + 1 { print $7 }'
}
# Each backup: the same store, sound, holding what the store held then (and had verified).
for name in backup1 backup2; do
  "$CLI" --db "$WORK/$name" verify >"$WORK/$name-verify.out" 2>&1 || fail "backup $name does not verify: $(cat "$WORK/$name-verify.out")"
  [[ $("$CLI" --db "$WORK/$name" --format csv stats | gawk -F, 'NR == 2 { print $1 }') == "$store_id" ]] ||
    fail "backup $name is not the same store"
done
[[ $(records_in "$WORK/backup1") == "$first" && $(records_in "$WORK/backup2") == "$second" ]] ||
  fail "the backups hold $(records_in "$WORK/backup1") and $(records_in "$WORK/backup2") records, their reports said $first and $second"
rm -f "$WORK"/backup?/lock.mdb

# ---------------------------------------------------------------- never over anything
before=$(md5sum "$WORK/backup1/data.mdb")
status=0
"$CLI" --db "$WORK/collector" backup "$WORK/backup1" >"$WORK/again.out" 2>"$WORK/again.err" || status=$?
((status == 73)) || fail "backup over an existing folder: exit $status, expected 73: $(cat "$WORK/again.err")"
grep -qF "already exists" "$WORK/again.err" || fail "backup over an existing folder: $(cat "$WORK/again.err")"
[[ $(md5sum "$WORK/backup1/data.mdb") == "$before" ]] || fail "a refused backup changed the existing one"

# ---------------------------------------------------------------- the nightly rotation
mkdir -p "$WORK/nightly/totalplace-keep-me" "$WORK/nightly/other"
echo notes >"$WORK/nightly/README"
for night in 1 2 3; do
  "$CLI" --db "$WORK/collector" backup --into "$WORK/nightly" --keep 2 >"$WORK/night$night.out" 2>&1 ||
    fail "backup --into, night $night: $(cat "$WORK/night$night.out")"
  sleep 1.1 # the folders are named by the second
done
kept=$(cd "$WORK/nightly" && ls -d totalplace-2* | wc -l)
((kept == 2)) || fail "backup --into --keep 2 kept $kept backups: $(ls -A "$WORK/nightly")"
[[ -d $WORK/nightly/totalplace-keep-me && -d $WORK/nightly/other && -f $WORK/nightly/README ]] ||
  fail "the rotation touched what is not its own: $(ls -A "$WORK/nightly")"
grep -qE '^old backups removed +1$' "$WORK/night3.out" || fail "night 3 did not say it removed one: $(cat "$WORK/night3.out")"
newest=$(cd "$WORK/nightly" && ls -d totalplace-2* | sort | tail -n 1)
[[ $newest =~ ^totalplace-[0-9]{8}T[0-9]{6}Z$ ]] || fail "backup folder named $newest"

# ---------------------------------------------------------------- restore: the same store
stop collector || fail "the collector did not stop cleanly"
mv "$WORK/collector" "$WORK/collector.live"
cp -r "$WORK/nightly/$newest" "$WORK/collector"
start_collector
grep -q "started: store $store_id " "$WORK/collector.log" || fail "the restored store does not start as the same store"
[[ $(stored_records) == "$final" ]] || fail "the restored nightly backup holds $(stored_records) records, not $final"
check_totals "$BODIES" "$WORK/csv/council.csv" "$WORK/csv/nhs.csv" "$WORK/csv/police.csv"
stop collector || fail "the collector on the restored store did not stop cleanly"
echo "1 passed, 0 failed"
