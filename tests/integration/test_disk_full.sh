#!/usr/bin/env bash
# test_disk_full: the collector's store on a real, small filesystem (a 1 MiB tmpfs this test
# mounts: it needs root, and fails loudly without it). Real agents deliver more than fits: the
# collector answers ACK_RETRY, logs "disk full: the filesystem of DIR has N bytes free" (not
# "Input/output error") and keeps running; once the filesystem is made bigger, delivery completes
# without anyone acting on the agents, the totals equal the independent reference exactly and the
# store verifies clean.
source "$(dirname "$0")/lib.sh"

if (($(id -u) != 0)); then
  fail "test_disk_full mounts a small tmpfs and needs root (it runs as uid $(id -u)): run the suite as root"
fi
command -v mount >/dev/null && command -v umount >/dev/null || fail "mount and umount are needed (util-linux)"

STORE=$WORK/collector
mkdir -p "$STORE"
mount -t tmpfs -o size=1m,mode=0700 tmpfs "$STORE" ||
  fail "cannot mount a tmpfs on $STORE (this test needs root and mount(2) allowed: in a container, CAP_SYS_ADMIN)"
# lib.sh's cleanup removes $WORK: unmount first, keeping the test's exit status.
trap 'status=$?; set +e; umount "$STORE" 2>/dev/null || umount -l "$STORE"; (exit $status); cleanup' EXIT
mountpoint -q "$STORE" || fail "$STORE is not a mount point after mount"

bash "$SRC/tests/integration/make_exports.sh" "$WORK/csv" 6000 31
BODIES="GB-LAE-BNS GB-NHS-RFF GB-PF-SYP"
init_store "$STORE"
start_collector
drop council "$WORK/csv/council.csv"
drop nhs "$WORK/csv/nhs.csv"
drop police "$WORK/csv/police.csv"
start_agent council GB-LAE-BNS
start_agent nhs GB-NHS-RFF
start_agent police GB-PF-SYP

wait_for 60 "the collector to say the disk is full" grep -q "disk full: the filesystem of $STORE has" "$WORK/collector.log"
grep -E '^[^ ]+Z E ingest: disk full storing [0-9]+ batches .*answered ACK_RETRY: disk full: the filesystem of '"$STORE"' has [0-9]+ bytes free' \
  "$WORK/collector.log" >/dev/null || fail "the disk-full line is not the expected error: $(grep -m 3 'disk full' "$WORK/collector.log")"
grep -q "Input/output error" "$WORK/collector.log" && fail "the collector still says Input/output error: $(grep -m 1 'Input/output' "$WORK/collector.log")"
sleep 2 # agents retry against the full disk for a while
kill -0 "${PIDS[collector]}" || fail "the collector died on a full disk"
full=$(stored_records)
note "disk full with $full records stored: $(grep -m 1 -o 'disk full: the filesystem of [^;]*' "$WORK/collector.log")"
((full < 18000)) || fail "everything fitted ($full records): the test proves nothing"
"$CLI" --db "$STORE" --format csv totals >/dev/null || fail "the store cannot be read while the disk is full"

note "more room: the tmpfs grows to 64 MiB; the agents' retries complete delivery"
mount -o remount,size=64m "$STORE" || fail "cannot grow the tmpfs"
for name in council nhs police; do
  stop "$name" TERM || fail "agent $name did not exit 0 on SIGTERM"
done
drain_agent council GB-LAE-BNS
drain_agent nhs GB-NHS-RFF
drain_agent police GB-PF-SYP
check_totals "$BODIES" "$WORK/csv/council.csv" "$WORK/csv/nhs.csv" "$WORK/csv/police.csv"
"$CLI" --db "$STORE" verify >"$WORK/verify.out" 2>&1 || fail "the store does not verify after the disk was full: $(cat "$WORK/verify.out")"
stop collector || fail "the collector did not stop cleanly"
echo "1 passed, 0 failed"
