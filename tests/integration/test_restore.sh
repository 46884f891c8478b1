# A restore of the collector's store loses nothing, with real daemons, real files and real kills.
# Three agents deliver; a backup of the store is taken with `totalplace backup` WHILE they deliver; more
# is delivered after it; the collector is stopped (SIGTERM in round 1, kill -9 in the middle of
# delivery in round 2), its store replaced by the backup, and started again. With no manual step
# the agents notice (an idle agent from its status request, a busy one from the next Acks'
# mark_before) and send again what the restored store lacks, and the totals equal the independent
# reference exactly. An agent whose retention is too short (outbox/retain_hours = 0) raises an
# alarm naming the files to drop again; dropping them restores the totals and --clear-alarm
# clears it. Round 3 replaces the store by a NEW one (another store id): everything retained is
# sent again.
source "$(dirname "$0")/lib.sh"
command -v mdb_copy >/dev/null || fail "mdb_copy is needed (lmdb-utils: deploy/install-deps.sh installs it)"
command -v jq >/dev/null || fail "jq is needed (deploy/install-deps.sh installs it)"

bash "$SRC/tests/integration/make_exports.sh" "$WORK/csv" 4000 17
# Each export cut into parts dropped at different times (the header on every part; rows keep
# their order, so the parts in order are the export).
split_export() {
  local name=$1; shift
  gawk -v out="$WORK/csv/$name" -v cuts="$*" 'BEGIN { n = split(cuts, cut, " ") }
    NR == 1 { header = $0; next }
    { part = 1; while (part <= n && NR - 1 > cut[part]) part++
      file = out "." part ".csv"
      if (!(file in started)) { print header > file; started[file] = 1 }
      print > file }' "$WORK/csv/$name.csv"
}
split_export council 400 800 1200    # council.1-4.csv; council.4.csv is the largest
split_export nhs 1300 2600           # nhs.1-3.csv
split_export police 2000             # police.1-2.csv

declare -A BODY=([council]=GB-LAE-BNS [nhs]=GB-NHS-RFF [police]=GB-PF-SYP)
# Small batches and a small window: many round trips, so that backups and kills land in the
# middle of delivery; idle agents ask the collector for their mark every 300 ms.
AGENT_OPTIONS=(--set agent/batch_records=20 --set agent/window=2 --set agent/check_interval_ms=300)

# agent_status NAME [OPTIONS...]: totalplace-agent status of agent NAME (stdout); its exit status.
agent_status() {
  local name=$1; shift
  "$AGENT" --state-dir "$WORK/$name/state" status "$@"
}

# delivered NAME: nothing waits in agent NAME's inbox and nothing is pending in its outbox.
delivered() {
  local name=$1
  [[ -z $(find "$WORK/$name/inbox" -maxdepth 1 -type f) ]] || return 1
  (($(agent_status "$name" --format json | jq '.pending.batches') == 0))
}

# DELIVERED holds "NAME FILE" lines: what the store must hold at the end of a round.
DELIVERED=()
give() { # give NAME PART: drops a part into the agent's inbox and counts it as delivered
  drop "$1" "$WORK/csv/$1.$2.csv"
  DELIVERED+=("$1 $1.$2.csv")
}

# reference_args [NAME...]: the BODIES string and files (for expected/check_totals) of what was
# given to these agents (all when none is named), in the order given.
reference_args() {
  local bodies="" files=() entry name file
  for entry in "${DELIVERED[@]}"; do
    read -r name file <<<"$entry"
    if (($# == 0)) || [[ " $* " == *" $name "* ]]; then
      bodies+="${BODY[$name]} "
      files+=("$WORK/csv/$file")
    fi
  done
  printf '%s\n' "$bodies" "${files[@]}"
}

# totals_match [NAME...]: the store's totals equal the reference exactly: all of them, or, for
# named agents, their bodies' lines.
totals_match() {
  local args
  mapfile -t args < <(reference_args "$@")
  local bodies=${args[0]} pattern='.'
  expected "$bodies" "${args[@]:1}" >"$WORK/expected.part" || return 1
  actual | sort >"$WORK/actual.part" || return 1
  if (($# > 0)); then
    pattern=$(for name in "$@"; do printf '^body [^ ]* %s |' "${BODY[$name]}"; done)
    pattern=${pattern%|}
  fi
  diff <(grep -E "$pattern" "$WORK/expected.part") <(grep -E "$pattern" "$WORK/actual.part") >/dev/null
}

# check_all: the whole store equals the reference of everything delivered (and says so).
check_all() {
  local args
  mapfile -t args < <(reference_args)
  check_totals "${args[0]}" "${args[@]:1}"
}

# backup DEST: a compacting copy of the live store, as an operator takes one.
backup() {
  "$CLI_BIN" --db "$WORK/collector" backup "$1" >>"$WORK/backup.log" 2>&1 \
    || fail "totalplace backup of the live store failed ($(tail -n 3 "$WORK/backup.log"))"
}

# restore FROM: the collector's store folder replaced by the backup's data.mdb.
restore() {
  rm -rf "$WORK/collector"
  mkdir -m 0750 "$WORK/collector"
  cp "$1/data.mdb" "$WORK/collector/data.mdb"
}

# records_in DIR: records a store folder holds.
records_in() {
  "$CLI" --db "$1" --format json stats | jq '.counters.records_stored'
}

# resent NAME: batches agent NAME says it sent again from its retained batches, over its log.
resent() {
  grep -o '[0-9]* sent again from the retained batches' "$WORK/$1.log" | gawk '{ n += $1 } END { print n + 0 }'
}

# lost_files NAME: the files agent NAME's alarm says to drop again, one per line.
lost_files() {
  agent_status "$1" --format json | jq -r '.alarm.ranges[].files[].file' | sort -u
}

# redrop_lost NAME: drops again every file the alarm names (as an operator would), waits for
# them, then clears the alarm.
redrop_lost() {
  local name=$1 file
  mapfile -t files < <(lost_files "$name")
  ((${#files[@]} > 0)) || fail "agent $name's alarm names no file to drop again"
  for file in "${files[@]}"; do
    [[ -f $WORK/csv/$file ]] || fail "agent $name's alarm names $file, which it never took"
    drop "$name" "$WORK/csv/$file"
  done
  note "$name: dropped again ${files[*]}"
  wait_for 30 "agent $name to deliver the files dropped again" delivered "$name"
}

# store_id_of DIR: the store's id, from its identity.
store_id_of() {
  "$CLI" --db "$1" --format json stats | jq -r '.store.store_id'
}

start_collector
ID1=$(store_id_of "$WORK/collector")
for name in council nhs police; do
  options=("${AGENT_OPTIONS[@]}")
  # police keeps nothing it has been acknowledged: a restore can only be reported for it.
  [[ $name == police ]] && options+=(--set outbox/retain_hours=0)
  start_agent "$name" "${BODY[$name]}" "${options[@]}"
done

note "round 1: a backup while the agents deliver, more delivery, SIGTERM, restore"
give council 1; give nhs 1; give police 1
wait_for 30 "the first records to arrive" more_than 300
backup "$WORK/backup1"
for name in council nhs police; do wait_for 60 "agent $name to deliver its first part" delivered "$name"; done
give council 2; give nhs 2; give police 2
for name in council nhs police; do wait_for 60 "agent $name to deliver its second part" delivered "$name"; done
check_all
held=$(records_in "$WORK/collector") in_backup=$(records_in "$WORK/backup1")
note "the store holds $held records, the backup $in_backup"
((in_backup < held)) || fail "the backup holds everything ($in_backup of $held records): the test proves nothing"
# police's acknowledged batches are pruned (retain_hours = 0) before the restore needs them.
wait_for 30 "police's retained batches to be pruned" \
  bash -c "(( \$('$AGENT' --state-dir '$WORK/police/state' status --format json | jq '.retained.batches') == 0 ))"
stop collector TERM || fail "the collector did not exit 0 on SIGTERM"
restore "$WORK/backup1"
start_collector
# Nothing is pending anywhere: every agent learns of the restore from its status request alone.
wait_for 60 "council and nhs to send again what the restored store lacks" totals_match council nhs
for name in council nhs; do
  grep -q "lacks batches .*its mark for this agent is" "$WORK/$name.log" \
    || fail "agent $name (idle) did not say that the restored store lacks its batches"
  (($(resent "$name") > 0)) || fail "agent $name sent nothing again"
  note "$name: $(resent "$name") batches sent again, learnt from a status request"
done
wait_for 30 "police's alarm" bash -c "! '$AGENT' --state-dir '$WORK/police/state' status >/dev/null"
status=0
agent_status police >"$WORK/police-status.txt" || status=$?
((status == 1)) || fail "totalplace-agent status exited $status with batches lost (expected 1)"
grep -qi "^alarm .*lost" "$WORK/police-status.txt" || fail "status shows no alarm: $(cat "$WORK/police-status.txt")"
grep -q "LOST: .* batches (seqs .*police\.2\.csv" "$WORK/police.log" \
  || fail "police logged no error naming the files to drop again"
totals_match police && fail "police's totals are whole although its batches were lost: the test proves nothing"
redrop_lost police
wait_for 30 "the totals to come back whole" totals_match
check_all
agent_status police --clear-alarm >/dev/null || fail "status --clear-alarm failed"
agent_status police >/dev/null || fail "totalplace-agent status still exits non-zero after --clear-alarm"

note "round 2: a backup while the agents deliver, more delivery, kill -9 in the middle of it"
give council 3; give nhs 3
wait_for 30 "round 2's first records" more_than $((held + 300))
backup "$WORK/backup2"
wait_for 60 "council to take its third part" test -f "$WORK/council/inbox/done/council.3.csv"
first=$(agent_status council --format json | jq '.next_seq')
# Council takes and delivers its fourth part in slices of 20 ms (x TIME_SCALE under valgrind),
# paused between them, until a few of the part's batches are acknowledged: the kill then always
# lands in the middle of its delivery, however fast the collector acknowledges (from its journal)
# and however slow the machine (a sanitizer build). Polling while it ran freely missed the middle:
# its 140 batches can all go between two polls.
kill -STOP "${PIDS[council]}"
give council 4
acked=0 slice_seconds=$(printf '0.%03d' $((20 * TIME_SCALE)))
for ((slice = 0; slice < 3000; slice++)); do
  acked=$(agent_status council --format json | jq '.highest_acked_seq')
  ((acked >= first + 5)) && break
  kill -CONT "${PIDS[council]}"; sleep "$slice_seconds"; kill -STOP "${PIDS[council]}"
done
((acked >= first + 5)) || fail "council acknowledged only up to $acked of its fourth part (from $first) in 3000 slices"
stop collector KILL || true
pending=$(agent_status council --format json | jq '.pending.batches')
kill -CONT "${PIDS[council]}"
held=$(records_in "$WORK/collector") in_backup=$(records_in "$WORK/backup2")
note "collector killed with council's batches still pending: $pending; the store holds $held records, the backup $in_backup"
((pending > 0)) || fail "council had delivered everything when the collector was killed: the test proves nothing"
((in_backup < held)) || fail "the backup holds everything ($in_backup of $held records): the test proves nothing"
resent_before=$(resent council) council_lines=$(wc -l <"$WORK/council.log")
restore "$WORK/backup2"
start_collector
wait_for 60 "every agent's totals to come back" totals_match
check_all
tail -n +$((council_lines + 1)) "$WORK/council.log" | grep -q "lacks batches .*was applied on a mark of" \
  || fail "council (delivering) did not notice the restore from an Ack's mark_before"
(($(resent council) > resent_before)) || fail "council sent nothing again in round 2"
agent_status police >/dev/null || fail "police raised an alarm in round 2, where it lost nothing"

note "round 3: the store replaced by a NEW store (another id)"
stop collector TERM || fail "the collector did not exit 0 on SIGTERM"
mv "$WORK/collector" "$WORK/old-store"
start_collector # a new store, made by totalplace-collector init
ID2=$(store_id_of "$WORK/collector")
[[ $ID1 != "$ID2" ]] || fail "a fresh init made a store with the same id"
wait_for 60 "council and nhs to send everything again to the new store" totals_match council nhs
for name in council nhs; do
  grep -q "store id changed from $ID1 to $ID2" "$WORK/$name.log" \
    || fail "agent $name's warning does not name both store ids ($ID1, $ID2)"
done
wait_for 30 "police's alarm for the new store" bash -c "! '$AGENT' --state-dir '$WORK/police/state' status >/dev/null"
redrop_lost police
wait_for 30 "the totals to come back whole in the new store" totals_match
check_all
agent_status police --clear-alarm >/dev/null || fail "status --clear-alarm failed"

note "both sides said what happened"
[[ $(grep -c "started: store $ID1" "$WORK/collector.log") == 3 ]] \
  || fail "the collector's start lines do not show store $ID1 three times"
grep -q "started: store $ID2" "$WORK/collector.log" || fail "the collector's start line does not show the new store $ID2"
grep -q "asked for its mark on a new connection" "$WORK/collector.log" \
  || fail "the collector did not log the agents' status requests"
"$CLI" --collector "$QUERY" --format json stats | jq -e '.ingest.status_requests > 0 and
  ([.agents[] | select(.agent_id == "council")][0].last_batch_seq > 0)' >/dev/null \
  || fail "totalplace stats shows no status requests, or no mark for council"

for name in council nhs police; do stop "$name" TERM || fail "agent $name did not exit 0 on SIGTERM"; done
stop collector TERM || fail "the collector did not exit 0 on SIGTERM"
echo "1 passed, 0 failed"
