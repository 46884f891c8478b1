#!/usr/bin/env bash
# test_store_refusal: a store is made only by `totalplace-collector init`. The real collector and
# `totalplace --db` refuse, with a message saying what to do and the documented exit status (78:
# no store or a format this version does not use; 65: damaged), a missing folder, an empty one, a
# zero-length data.mdb, a truncated one, a store of a newer format, of an older one (the message
# names the upgrade command) and one without identity;
# nothing is created or changed, and nothing dies of SIGBUS. init refuses a folder that is not
# empty and an existing store, honours -c, and a restarted collector keeps its store and id.
source "$(dirname "$0")/lib.sh"

STORE_META=$BIN/tests/tp_store_meta
SEND=$BIN/tests/tp_send
[[ -x $STORE_META && -x $SEND ]] || fail "tp_store_meta and tp_send must be built"

# snapshot DIR [IGNORED]: every name below DIR with its size and checksum, but for the file named
# IGNORED ("missing" when DIR is missing).
snapshot() {
  [[ -e $1 ]] || { echo missing; return; }
  (cd "$1" && find . ! -name "${2:-/}" -printf '%p %y %s\n' | LC_ALL=C sort &&
     find . -type f ! -name "${2:-/}" -exec md5sum {} + | LC_ALL=C sort)
}

# expect_refused STATUS TEXT DIR [lock]: the collector and `totalplace --db` on DIR each exit
# STATUS with TEXT in their message, create no socket and leave DIR exactly as it was; with
# "lock", for a store LMDB had to open to read its identity, but for LMDB's lock file lock.mdb
# (which holds no data).
expect_refused() {
  local want=$1 text=$2 dir=$3 ignored=${4:+lock.mdb} status=0 before
  before=$(snapshot "$dir" "$ignored")
  rm -f "$WORK/refused.sock"
  timeout $((20 * TIME_SCALE)) "${RUN[@]}" "$COLLECTOR" --state-dir "$dir" \
    --ingest "ipc://$WORK/refused.sock" --query "" --allow-plain >"$WORK/refused.log" 2>&1 || status=$?
  cat "$WORK/refused.log" >>"$WORK/collector.log"
  ((status == want)) || fail "collector on $dir: exit $status, expected $want: $(cat "$WORK/refused.log")"
  grep -qF -- "$text" "$WORK/refused.log" || fail "collector on $dir: the log lacks \"$text\": $(cat "$WORK/refused.log")"
  [[ ! -e $WORK/refused.sock ]] || fail "collector on $dir bound its ingest socket before refusing the store"
  [[ $(snapshot "$dir" "$ignored") == "$before" ]] || fail "collector on $dir changed it while refusing it"

  status=0
  timeout 30 "$CLI" --db "$dir" stats >"$WORK/refused.out" 2>"$WORK/refused.err" || status=$?
  ((status == want)) || fail "totalplace --db $dir: exit $status, expected $want: $(cat "$WORK/refused.err")"
  grep -qF -- "$text" "$WORK/refused.err" || fail "totalplace --db $dir: stderr lacks \"$text\": $(cat "$WORK/refused.err")"
  [[ ! -s $WORK/refused.out ]] || fail "totalplace --db $dir wrote to stdout while refusing"
  [[ $(snapshot "$dir" "$ignored") == "$before" ]] || fail "totalplace --db $dir changed it while refusing it"
  note "refused with $want: $dir ($text)"
}

# store_id_of DIR: the store id `totalplace --db DIR stats` shows.
store_id_of() {
  "$CLI" --db "$1" --format csv stats | gawk -F, 'NR == 2 { print $1 }'
}

# ---------------------------------------------------------------- a real store with records
start_collector
"$SEND" "$INGEST" --agent agent-1 --batches 4 --records 500 --neighbourhood E01000001 \
  >"$WORK/send.out" || fail "tp_send failed: $(cat "$WORK/send.out")"
[[ $(grep -c 'status=APPLIED' "$WORK/send.out") == 4 ]] || fail "not every batch applied: $(cat "$WORK/send.out")"
initial_id=$(cat "$WORK/store-id")
[[ $initial_id =~ ^[0-9a-f]{32}$ ]] || fail "init printed \"$initial_id\", not a store id"
[[ $(store_id_of "$WORK/collector") == "$initial_id" ]] || fail "stats does not show the store id init printed"
collector_json=$("$CLI" --collector "$QUERY" --format json stats)
[[ $(jq -r '.store.store_id' <<<"$collector_json") == "$initial_id" ]] ||
  fail "stats --collector does not show the store id: $collector_json"
[[ $(jq -r '.store.format' <<<"$collector_json") == 2 ]] || fail "stats --collector: format is not 2"
grep -q "started: store $initial_id (format 2, created " "$WORK/collector.log" ||
  fail "the collector's start line does not name its store"

# A restart reuses the store: same id, same records.
stop collector || fail "the collector did not stop cleanly (exit $?)"
start_collector
[[ $(store_id_of "$WORK/collector") == "$initial_id" ]] || fail "the restarted collector has another store id"
[[ $(stored_records) == 2000 ]] || fail "the restarted collector's store holds $(stored_records) records, not 2000"
stop collector || fail "the collector did not stop cleanly (exit $?)"

# ---------------------------------------------------------------- no store
expect_refused 78 "no store in $WORK/none (the folder does not exist): create one with \`totalplace-collector init --state-dir $WORK/none\`" "$WORK/none"
mkdir "$WORK/empty"
expect_refused 78 "no store in $WORK/empty (it holds no data.mdb)" "$WORK/empty"

# ---------------------------------------------------------------- damaged
mkdir "$WORK/zero" && : >"$WORK/zero/data.mdb"
expect_refused 65 "$WORK/zero/data.mdb is empty (0 bytes)" "$WORK/zero"
size=$(stat -c %s "$WORK/collector/data.mdb")
page=$(getconf PAGESIZE)
for cut in 100 $((page + 10)) $((2 * page)) $((size / 2)) $((size - page)); do
  mkdir "$WORK/cut$cut"
  head -c "$cut" "$WORK/collector/data.mdb" >"$WORK/cut$cut/data.mdb"
  expect_refused 65 "is truncated" "$WORK/cut$cut"
done
mkdir "$WORK/junk" && head -c 65536 /dev/urandom >"$WORK/junk/data.mdb"
expect_refused 65 "is not an LMDB file" "$WORK/junk"

# ---------------------------------------------------------------- formats
cp -r "$WORK/collector" "$WORK/newer" && rm -f "$WORK/newer/lock.mdb"
"$STORE_META" "$WORK/newer" format 3 || fail "tp_store_meta failed"
expect_refused 78 "is of format 3, newer than this totalplace knows (format 2): upgrade totalplace" "$WORK/newer" lock
cp -r "$WORK/collector" "$WORK/older" && rm -f "$WORK/older/lock.mdb"
"$STORE_META" "$WORK/older" format 1 || fail "tp_store_meta failed"
expect_refused 78 "is of format 1, and this totalplace uses format 2: stop the collector and run \`totalplace-collector upgrade --state-dir $WORK/older\`" "$WORK/older" lock
cp -r "$WORK/collector" "$WORK/format0" && rm -f "$WORK/format0/lock.mdb"
for key in format store_id created; do
  "$STORE_META" "$WORK/format0" "$key" --delete || fail "tp_store_meta failed"
done
expect_refused 78 "has no identity: it was made before stores had one (format 0)" "$WORK/format0" lock

# ---------------------------------------------------------------- init refuses, and honours -c
before=$(snapshot "$WORK/collector")
status=0
"$COLLECTOR" init --state-dir "$WORK/collector" >"$WORK/init.out" 2>"$WORK/init.err" || status=$?
((status == 73)) || fail "init on an existing store: exit $status, expected 73"
grep -qF "already holds a store (data.mdb)" "$WORK/init.err" || fail "init on a store: $(cat "$WORK/init.err")"
[[ ! -s $WORK/init.out ]] || fail "init printed a store id while refusing"
[[ $(snapshot "$WORK/collector") == "$before" ]] || fail "init changed an existing store"
[[ $(store_id_of "$WORK/collector") == "$initial_id" ]] || fail "the store id changed"

mkdir "$WORK/busy" && echo keep >"$WORK/busy/notes.txt"
before=$(snapshot "$WORK/busy")
status=0
"$COLLECTOR" init --state-dir "$WORK/busy" >"$WORK/init.out" 2>"$WORK/init.err" || status=$?
((status == 73)) || fail "init on a folder that is not empty: exit $status, expected 73"
grep -qF "is not empty (it holds \"notes.txt\")" "$WORK/init.err" || fail "init on a full folder: $(cat "$WORK/init.err")"
[[ $(snapshot "$WORK/busy") == "$before" ]] || fail "init changed a folder it refused"

status=0
"$COLLECTOR" init --state-dir "$WORK/collector" --check >/dev/null 2>"$WORK/init.err" || status=$?
((status == 2)) || fail "init --check: exit $status, expected 2 (usage)"

# A unit's config file: init takes the state folder from it, and needs none of the daemon's keys.
cat >"$WORK/collector.conf" <<EOF
collector
    state_dir = "$WORK/from-config"
EOF
config_id=$("$COLLECTOR" init -c "$WORK/collector.conf" 2>"$WORK/init.err") || fail "init -c failed: $(cat "$WORK/init.err")"
[[ $config_id =~ ^[0-9a-f]{32}$ && $config_id != "$initial_id" ]] || fail "init -c printed \"$config_id\""
[[ $(store_id_of "$WORK/from-config") == "$config_id" ]] || fail "init -c did not make its store in collector/state_dir"
note "init refuses an existing store and a full folder (73), honours -c"
