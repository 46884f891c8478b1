#!/usr/bin/env bash
# test_inbox_faults: an agent takes a file once, and never busy-loops, whatever its folders do.
# Real daemons, real small filesystems (tmpfs this test mounts: it needs root, and fails loudly
# without it):
#  1. a read-only inbox: the file is delivered once (the collector's duplicate count does not
#     move while the agent runs on), one error line names the file and "Read-only file system",
#     the agent's CPU stays low, status shows the file as not moved; once the inbox is writable
#     again the file moves to done/ without being sent again; dropped again from done/ on purpose,
#     it is taken again (a new drop);
#  2. an inbox on a full filesystem: the file is delivered once and moved, its rejects kept in
#     the state folder (named in the log) since done/ cannot take them;
#  3. the agent's state folder on a full filesystem: nothing is stored, one error line says "no
#     space left on device", the CPU stays low; once there is room the file is delivered;
#  4. a full outbox (outbox/max_batches) with the collector down: the waiting file is not read
#     again and again (one warning, CPU low), status exits 1 once nothing was acknowledged for
#     agent/stall_alarm_s, and the file is delivered once acks make room.
source "$(dirname "$0")/lib.sh"

if (($(id -u) != 0)); then
  fail "test_inbox_faults mounts small tmpfs filesystems and needs root (it runs as uid $(id -u)): run the suite as root"
fi
command -v mount >/dev/null && command -v umount >/dev/null || fail "mount and umount are needed (util-linux)"

MOUNTS=()
# mount_tmpfs DIR SIZE: a tmpfs of SIZE on DIR, unmounted when the test ends.
mount_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$1" ||
    fail "cannot mount a tmpfs on $1 (this test needs root and mount(2) allowed: in a container, CAP_SYS_ADMIN)"
  mountpoint -q "$1" || fail "$1 is not a mount point after mount"
  MOUNTS+=("$1")
}
trap 'status=$?; set +e; for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done; (exit $status); cleanup' EXIT

# stats_col N: column N of the collector's batch counters (1 batches, 3 duplicate, 7 records).
stats_col() {
  "$CLI" --db "$WORK/collector" --format csv stats 2>/dev/null |
    gawk -F, -v col="$1" '$1 == "batches" { header = NR } header && NR == header + 1 { print $col; found = 1 }
              END { if (!found) print 0 }'
}
# cpu_ms PID: user plus system CPU time the process has used, in ms.
cpu_ms() {
  gawk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); split($0, f, " "); print int((f[12] + f[13]) * 1000 / hz) }' "/proc/$1/stat"
}
# errors_in LOG PATTERN: error lines (E:) matching PATTERN.
errors_in() { grep -c -E "^[^ ]+Z E .*$2" "$1" || true; }
records_of() { gawk 'NR > 1 && NF { n++ } END { print n + 0 }' "$1"; }

bash "$SRC/tests/integration/make_exports.sh" "$WORK/csv" 3000 41
start_collector
WINDOW=12 # seconds the agents are watched running on after their trouble began

note "1. a read-only inbox"
INBOX=$WORK/ro/inbox
mount_tmpfs "$INBOX" 16m
cp "$WORK/csv/council.csv" "$INBOX/council.csv"
mount -o remount,ro "$INBOX" || fail "cannot make $INBOX read-only"
touch "$INBOX/probe" 2>/dev/null && fail "$INBOX is still writable: the test proves nothing"
start_agent ro GB-LAE-BNS --inbox "$INBOX"
wait_for 60 "the read-only inbox's file to be delivered" grep -q "council.csv: delivered:" "$WORK/ro.log"
duplicates=$(stats_col 3)
batches=$(stats_col 1)
cpu_before=$(cpu_ms "${PIDS[ro]}")
sleep "$WINDOW"
cpu_used=$(($(cpu_ms "${PIDS[ro]}") - cpu_before))
note "read-only inbox: ${cpu_used} ms of CPU in ${WINDOW} s; collector batches $batches -> $(stats_col 1), duplicates $duplicates -> $(stats_col 3)"
(($(stats_col 1) == batches)) || fail "the agent sent the file again: the collector's batches went from $batches to $(stats_col 1)"
(($(stats_col 3) == duplicates)) || fail "duplicates flood: $duplicates -> $(stats_col 3)"
((cpu_used < 1000 * TIME_SCALE)) || fail "the agent used ${cpu_used} ms of CPU in ${WINDOW} s beside a read-only inbox: a busy loop"
lines=$(errors_in "$WORK/ro.log" "council.csv: taken .*cannot be moved out of the inbox: cannot create folder $INBOX/done: Read-only file system")
((lines == 1)) || fail "expected exactly one error line naming council.csv and the read-only file system, found $lines: $(grep -E '^[^ ]+Z E ' "$WORK/ro.log" | head -5)"
grep -q "^[^ ]*Z E .*cannot create folder $INBOX/done: Read-only file system" "$WORK/ro.log" ||
  fail "the agent did not say at start that done/ cannot be created"
"$AGENT" --state-dir "$WORK/ro/state" --inbox "$INBOX" status >"$WORK/ro-status.out" ||
  fail "status exits $? for a healthy agent whose file could not be moved: $(cat "$WORK/ro-status.out")"
grep -q "^not moved  *council.csv (taken " "$WORK/ro-status.out" || fail "status does not show the file not moved: $(cat "$WORK/ro-status.out")"
grep -q "^pending  *0 batches, 0 records" "$WORK/ro-status.out" || fail "status shows batches pending: $(cat "$WORK/ro-status.out")"

note "the inbox made writable; the agent restarted moves the file without sending it again"
stop ro TERM || fail "the agent did not stop on SIGTERM"
mount -o remount,rw "$INBOX" || fail "cannot make $INBOX writable again"
start_agent ro GB-LAE-BNS --inbox "$INBOX"
wait_for 30 "the file to move to done/" test -f "$INBOX/done/council.csv"
grep -q "council.csv: moved to $INBOX/done/council.csv at last" "$WORK/ro.log" || fail "the move was not said"
sleep 2
(($(stats_col 1) == batches)) || fail "moving the file sent it again: batches $batches -> $(stats_col 1)"
"$AGENT" --state-dir "$WORK/ro/state" --inbox "$INBOX" status >"$WORK/ro-status.out" || fail "status exits $?"
grep -q "^not moved" "$WORK/ro-status.out" && fail "status still shows the file as not moved: $(cat "$WORK/ro-status.out")"

note "dropped again on purpose (copied back from done/): a new drop, taken again"
cp "$INBOX/done/council.csv" "$INBOX/.again.part" && mv "$INBOX/.again.part" "$INBOX/council.csv"
wait_for 30 "the dropped-again file to be taken" test -f "$INBOX/done/council.1.csv"
delivered_twice() { (($(grep -c 'council.csv: delivered:' "$WORK/ro.log") >= 2)); }
wait_for 30 "the dropped-again file to be delivered" delivered_twice
(($(stats_col 1) > batches)) || fail "the file dropped again was not sent"
stop ro TERM || fail "the agent did not stop on SIGTERM"

note "2. an inbox on a full filesystem"
INBOX=$WORK/full/inbox
mount_tmpfs "$INBOX" 512k
mkdir -p "$INBOX/done" "$INBOX/failed"
# A file with rejected rows: the rejects must be kept somewhere a person finds them.
{ cat "$WORK/csv/nhs.csv"; echo "GB-NHS-RFF,BAD-1,1,2024-13-40,12.00,E01000001,Care,Supplier,,No,No"; } >"$INBOX/.nhs.part"
mv "$INBOX/.nhs.part" "$INBOX/nhs.csv"
dd if=/dev/zero of="$INBOX/filler" bs=4k 2>/dev/null || true
(($(df --output=avail -k "$INBOX" | tail -n 1) == 0)) || fail "the inbox filesystem is not full: $(df -k "$INBOX" | tail -n 1)"
start_agent full GB-NHS-RFF --inbox "$INBOX"
wait_for 60 "the full inbox's file to be delivered" grep -q "nhs.csv: delivered:" "$WORK/full.log"
wait_for 10 "the file to move to done/" test -f "$INBOX/done/nhs.csv"
kept=$(ls "$WORK/full/state/side-files/"nhs*.rejects.csv 2>/dev/null | head -n 1)
[[ -n $kept ]] || fail "the rejects of nhs.csv were kept nowhere: $(ls -la "$WORK/full/state/side-files" "$INBOX/done")"
grep -q "BAD-1\|line" "$kept" && (($(records_of "$kept") >= 1)) || fail "the kept rejects file $kept does not hold the rejected row: $(cat "$kept")"
grep -q "nhs.csv: cannot keep the rejects.csv in $INBOX/done: No space left on device; kept in $WORK/full/state/side-files" "$WORK/full.log" ||
  fail "the agent did not say where the rejects went and why: $(grep -E '^(W|E):' "$WORK/full.log" | head -5)"
stop full TERM || fail "the agent did not stop on SIGTERM"

note "3. the agent's state folder on a full filesystem"
STATE=$WORK/disk/state
mount_tmpfs "$STATE" 256k
bash "$SRC/tests/integration/make_exports.sh" "$WORK/big" 8000 43
mkdir -p "$WORK/disk/inbox"
drop disk "$WORK/big/police.csv"
start_agent disk GB-PF-SYP --state-dir "$STATE"
wait_for 60 "the agent to say the disk is full" grep -q "no space left on device" "$WORK/disk.log"
# The file is read again at each try, after 1, 2, 4, 8 ... s: watched once the backoff has grown
# (a busy loop would read it twice a second).
sleep 8
police_before=$(stats_col 7)
cpu_before=$(cpu_ms "${PIDS[disk]}")
sleep "$WINDOW"
cpu_used=$(($(cpu_ms "${PIDS[disk]}") - cpu_before))
note "state folder full: ${cpu_used} ms of CPU in ${WINDOW} s"
((cpu_used < 1000 * TIME_SCALE)) || fail "the agent used ${cpu_used} ms of CPU in ${WINDOW} s against a full disk: a busy loop"
lines=$(errors_in "$WORK/disk.log" "no space left on device")
((lines == 1)) || fail "expected one error line about the full disk, found $lines: $(grep -E '^[^ ]+Z E ' "$WORK/disk.log" | head -5)"
grep -q "^[^ ]*Z E .*police.csv: outbox $STATE/outbox: commit failed: no space left on device (the file system holding it has [0-9]* bytes free" "$WORK/disk.log" ||
  fail "the full disk is not named as such: $(grep -E '^[^ ]+Z E ' "$WORK/disk.log" | head -3)"
grep -q "Input/output error" "$WORK/disk.log" && fail "the agent still says Input/output error"
test -f "$WORK/disk/inbox/police.csv" || fail "the file left the inbox though it was not stored"
(($(stats_col 7) == police_before)) || fail "records arrived from an agent that could store nothing"
note "more room: the file is taken at the next try"
mount -o remount,size=64m "$STATE" || fail "cannot grow $STATE"
wait_for 90 "the file to be delivered once there is room" grep -q "police.csv: delivered:" "$WORK/disk.log"
grep -q "police.csv: taken; files are taken from the inbox again" "$WORK/disk.log" || fail "the end of the trouble was not said"
stop disk TERM || fail "the agent did not stop on SIGTERM"

note "4. a full outbox with the collector down"
stop collector TERM || fail "the collector did not stop"
mkdir -p "$WORK/box/inbox"
drop box "$WORK/csv/council.csv" a.csv
drop box "$WORK/csv/police.csv" b.csv
start_agent box GB-LAE-BNS --set outbox/max_batches=5 --set agent/batch_records=1000
wait_for 30 "the outbox-full warning" grep -q "outbox full" "$WORK/box.log"
cpu_before=$(cpu_ms "${PIDS[box]}")
sleep "$WINDOW"
cpu_used=$(($(cpu_ms "${PIDS[box]}") - cpu_before))
note "outbox full: ${cpu_used} ms of CPU in ${WINDOW} s"
((cpu_used < 1000 * TIME_SCALE)) || fail "the agent used ${cpu_used} ms of CPU in ${WINDOW} s with a full outbox: it reads the waiting file again and again"
(($(grep -c "outbox full" "$WORK/box.log") == 1)) || fail "the outbox-full warning was said more than once"
test -f "$WORK/box/inbox/b.csv" || fail "b.csv was taken though the outbox was full"
note "status beside it: healthy within agent/stall_alarm_s, unhealthy (exit 1) past it"
status=0
"$AGENT" --state-dir "$WORK/box/state" --inbox "$WORK/box/inbox" --format json status >"$WORK/box-status.json" || status=$?
((status == 0)) || fail "status exits $status within the stall alarm: $(cat "$WORK/box-status.json")"
status=0
"$AGENT" --state-dir "$WORK/box/state" --inbox "$WORK/box/inbox" --set agent/stall_alarm_s=2 --format json status \
  >"$WORK/box-status.json" || status=$?
((status == 1)) || fail "status exits $status for batches waiting past agent/stall_alarm_s: $(cat "$WORK/box-status.json")"
gawk '/"healthy": false/ { h = 1 } /delivery stalled: [0-9]+ batches wait and nothing was acknowledged/ { p = 1 }
      /"records": [1-9]/ { r = 1 } END { exit !(h && p && r) }' "$WORK/box-status.json" ||
  fail "status JSON does not say the delivery stalled: $(cat "$WORK/box-status.json")"
"$AGENT" --state-dir "$WORK/box/state" --inbox "$WORK/box/inbox" --set agent/stall_alarm_s=2 status >"$WORK/box-status.out" || true
grep -q "^problem  *delivery stalled" "$WORK/box-status.out" && grep -q "^healthy  *no" "$WORK/box-status.out" ||
  fail "status table does not say the delivery stalled: $(cat "$WORK/box-status.out")"
start_collector
wait_for 60 "b.csv to be delivered once acks made room" grep -q "b.csv: delivered:" "$WORK/box.log"
stop box TERM || fail "the agent did not stop on SIGTERM"
stop collector TERM || fail "the collector did not stop cleanly"
echo "1 passed, 0 failed"
