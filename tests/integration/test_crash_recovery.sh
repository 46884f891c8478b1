# Crashes and outages, real processes: kill -9 of the collector and of an agent in the middle of
# delivery, and a collector that is down while agents take files. After restarts the totals must
# still equal totals computed independently from the CSV files.
source "$(dirname "$0")/lib.sh"
bash "$SRC/tests/integration/make_exports.sh" "$WORK/csv" 6000 11
BODIES="GB-LAE-BNS GB-NHS-RFF GB-PF-SYP"
# Small batches so that delivery takes many round trips and a kill lands in the middle of it. The
# default ack timeout (10 s): a collector killed and restarted at once must not cost the agents
# that long (they resend what was in flight when the connection is back: the gap is measured).
SMALL=(--set agent/batch_records=20 --set agent/window=2 --set agent/ack_timeout_ms=10000)

note "collector down while agents take their files"
drop council "$WORK/csv/council.csv"
drop nhs "$WORK/csv/nhs.csv"
start_agent council GB-LAE-BNS "${SMALL[@]}"
start_agent nhs GB-NHS-RFF "${SMALL[@]}"
wait_for 30 "council's file to reach the outbox" test -f "$WORK/council/inbox/done/council.csv"
wait_for 30 "nhs's file to reach the outbox" test -f "$WORK/nhs/inbox/done/nhs.csv"
sleep 1 # the agents retry against nothing for a while

note "collector starts; kill -9 of the collector in the middle of delivery"
start_collector
wait_for 30 "the first records to arrive" more_than 0
stop collector KILL || true
got=$(stored_records)
note "collector killed with $got records stored"
((got < 12000)) || fail "delivery was already complete when the collector was killed ($got records); the test proves nothing"
start_collector
back=$(date +%s%N)
wait_for 30 "delivery to resume after the restart" more_than "$got"
gap_ms=$((($(date +%s%N) - back) / 1000000))
note "delivery resumed ${gap_ms} ms after the collector was back (ack timeout 10000 ms)"
((gap_ms < 1000 * TIME_SCALE)) || fail "delivery resumed only ${gap_ms} ms after the collector was back: the agents waited for their ack timeout instead of resending when the connection came back"
grep -q "is back: sending the [0-9]* batches that were in flight again" "$WORK/council.log" "$WORK/nhs.log" ||
  fail "no agent said it resent its batches in flight when the collector was back"

note "kill -9 of an agent in the middle of delivery"
drop police "$WORK/csv/police.csv"
start_agent police GB-PF-SYP "${SMALL[@]}"
wait_for 30 "police's file to reach the outbox" test -f "$WORK/police/inbox/done/police.csv"
wait_for 30 "some police records to arrive" bash -c "'$CLI' --db '$WORK/collector' --format csv totals --body GB-PF-SYP | gawk -F, 'NR == 2 { exit !(\$2 > 0) }'"
stop police KILL || true
note "police agent killed; restarting it to drain its outbox"

stop council TERM || fail "council agent did not exit 0 on SIGTERM"
stop nhs TERM || fail "nhs agent did not exit 0 on SIGTERM"
drain_agent council GB-LAE-BNS
drain_agent nhs GB-NHS-RFF
drain_agent police GB-PF-SYP
check_totals "$BODIES" "$WORK/csv/council.csv" "$WORK/csv/nhs.csv" "$WORK/csv/police.csv"
stop collector TERM || fail "collector did not exit 0 on SIGTERM"
echo "1 passed, 0 failed"
