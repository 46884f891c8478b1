#!/usr/bin/env bash
# The main job on the bundled sample: a collector and four agents (a council, an NHS body, a police
# force and Jobcentre/DWP) on loopback-only ipc:// sockets in a temporary folder. Every agent
# delivers its export until each batch is acknowledged; then the totals are asked of the running
# collector over its query endpoint (totalplace --collector), with the sample's places
# (deploy/sample/places.csv: three places of the sample's eight neighbourhoods, with made-up
# populations), the report page of the place with the most spending is written (its path printed
# last) and everything stops cleanly.
# The sockets are ipc:// paths in a private folder, so the demo runs without CURVE
# (--allow-plain, which only ipc:// and loopback endpoints accept); docs/security.md sets up keys.
# Installs missing packages and builds first.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null

work=$(mktemp -d /tmp/totalplace-demo.XXXXXX)
collector_pid=""
cleanup() {
  [[ -n $collector_pid ]] && kill "$collector_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ingest="ipc://$work/ingest.sock"
query="ipc://$work/query.sock"
# A collector never creates its store: make it once, as an operator does (docs/operations.md).
build/collector/totalplace-collector init --state-dir "$work/collector" >/dev/null \
  2>"$work/collector.log" || { cat "$work/collector.log" >&2; exit 1; }
build/collector/totalplace-collector --state-dir "$work/collector" --ingest "$ingest" \
  --query "$query" --allow-plain --places deploy/sample/places.csv 2>>"$work/collector.log" &
collector_pid=$!
for _ in $(seq 100); do [[ -S $work/ingest.sock && -S $work/query.sock ]] && break; sleep 0.1; done
[[ -S $work/ingest.sock && -S $work/query.sock ]] ||
  { cat "$work/collector.log" >&2; echo "collector did not start" >&2; exit 1; }

# name, body id, sample file
agents=("council GB-LAE-BNS council.csv" "nhs GB-NHS-02P nhs.csv"
        "police GB-PF-SYP police.csv" "dwp GB-GOV-DWP dwp.csv")
pids=()
for entry in "${agents[@]}"; do
  read -r name body file <<<"$entry"
  mkdir -p "$work/$name/inbox"
  build/agents/totalplace-agent --id "$name" --body "$body" --inbox "$work/$name/inbox" \
    --state-dir "$work/$name/state" --collector "$ingest" --allow-plain \
    submit "deploy/sample/$file" >/dev/null
  build/agents/totalplace-agent --id "$name" --body "$body" --inbox "$work/$name/inbox" \
    --state-dir "$work/$name/state" --collector "$ingest" --allow-plain --once 2>"$work/$name.log" &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  if ! timeout 120 tail --pid="${pids[$i]}" -f /dev/null || ! wait "${pids[$i]}"; then
    cat "$work"/*.log >&2
    echo "an agent did not deliver its file" >&2
    exit 1
  fi
done

echo "Every batch acknowledged. What each agent did:"
grep -h -E "queued" "$work"/{council,nhs,police,dwp}.log | sed -E "s/^[A-Z]: [0-9-]+ [0-9:]+ /  /" || true
for name in council nhs police dwp; do
  for rejects in "$work/$name/inbox/done/"*.rejects.csv; do
    [[ -f $rejects ]] && { echo "  rejected rows of $name ($(basename "$rejects")):"; tail -n +2 "$rejects" | sed 's/^/    /'; }
  done
done
echo

# Asked of the running collector; `--db "$work/collector"` would print the same from its store.
cli=(build/collector/totalplace --collector "$query" --allow-plain)
"${cli[@]}" neighbourhoods
echo
"${cli[@]}" pooling
echo
"${cli[@]}" totals --by body
echo
"${cli[@]}" places
echo
# The page to hand round (docs/report.md): the place with the most spending, kept in build/ after
# the demo's own folder is gone.
top_place=$("${cli[@]}" --format csv places | awk -F, 'NR == 2 { print $2 }')
report=$("${cli[@]}" report --place "$top_place" --out "$top/build/totalplace-report.html")
echo "Report for the place with the most spending, $top_place (open it in a browser, or print it on A4):"
echo "  $report"
kill -TERM "$collector_pid"; wait "$collector_pid"; collector_pid=""
