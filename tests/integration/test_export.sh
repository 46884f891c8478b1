#!/usr/bin/env bash
# test_export: fills a store with tp_fill (duplicates, a correction, a stale copy, a conflict, a
# withdrawal, credits, commas, quotes and a line break in text), then runs the real
# `totalplace --db DIR export` for records and totals, CSV and JSON Lines, and checks: the records
# are exactly the final version of every key the awk model of cli_checks.sh keeps (withdrawn ones
# flagged); the totals cells re-add, by neighbourhood, body and month, to the CLI's own CSV
# answers to the penny, and so do the live records; pounds text is the pence, exactly; --out is
# written whole and --meta names the store and the commit; a flipped bit in one record stops the
# export with exit 65, the key named and no --out file left; --collector is refused.
set -euo pipefail

fail() {
  echo "test_export: FAIL: $*" >&2
  exit 1
}

: "${TOTALPLACE_BIN:?set TOTALPLACE_BIN to the build folder}"
cli=$TOTALPLACE_BIN/collector/totalplace
collector=$TOTALPLACE_BIN/collector/totalplace-collector
fill=$TOTALPLACE_BIN/tests/tp_fill
flip=$TOTALPLACE_BIN/tests/tp_flip
for tool in "$cli" "$collector" "$fill" "$flip"; do [[ -x $tool ]] || fail "$tool is not built"; done
command -v python3 >/dev/null || fail "python3 is required (deploy/install-deps.sh installs it)"
export LC_ALL=C

base=${TOTALPLACE_TEST_TMP:-/tmp}
mkdir -p "$base"
work=$(mktemp -d "$base/test_export.XXXXXX")
trap 'rm -rf "$work"' EXIT
store=$work/store
store_id=$("$collector" init --state-dir "$store" 2>/dev/null) || fail "init of $store failed"

# body|record|revision|neighbourhood|service|period|amount_pence|poolable|withdrawn|supplier|description
cat >"$work/batch1" <<'EOF'
GB-LAE-BNS|T-0001|1|E01000001|Adult social care, "older" people|2013-04|123456789|y|n|ACME, Ltd|Day care
GB-LAE-BNS|T-0002|1|E01000001|Housing|2014-03|-1200|n|n|Council Homes|Refund
GB-LAE-BNS|T-0003|1|E01000002|Housing|2014-04|50000|y|n||
GB-LAE-BNS|T-0004|1|E01000003|Libraries|2013-03|700|n|n||
GB-LAE-BNS|T-0001|1|E01000001|Adult social care, "older" people|2013-04|123456789|y|n|ACME, Ltd|Day care
GB-LAE-BNS|T-0006|1|E01000001|Housing|2013-06|99|y|n| leading space|trailing space 
EOF
cat >"$work/batch2" <<'EOF'
GB-POL-SY|P 100|1|E01000001|Policing|2013-05|2500000|y|n|South Yorkshire Police|Patrols
GB-POL-SY|P 101|1|E01000002|Policing|2013-12|-75000|n|n||Credit
GB-LAE-BNS|T-0002|2|E01000001|Housing|2014-03|-1500|n|n|Council Homes|Refund, corrected
GB-LAE-BNS|T-0002|1|E01000001|Housing|2014-03|-1200|n|n|Council Homes|Refund
GB-LAE-BNS|T-0004|2|E01000003|Libraries|2013-03|700|n|y||
GB-POL-SY|P 100|1|E01000001|Policing|2013-05|2500001|y|n|South Yorkshire Police|Patrols
GB-DWP|D-1|1|E01000004|Employment support|2015-01|10000|y|n|Café Ünïcode|
GB-DWP|D-2|1|E01000004|Employment support|2015-02|-10000|n|n||
GB-POL-SY|P 102|1|E01000001|Policing|2014-04|1|n|n||
EOF
"$fill" --agent agent-bns --seq 1 "$store" <"$work/batch1" >/dev/null || fail "tp_fill batch 1 failed"
"$fill" --agent agent-pol --seq 1 "$store" <"$work/batch2" >/dev/null || fail "tp_fill batch 2 failed"

# shellcheck source=cli_checks.sh
source "$(dirname "$0")/cli_checks.sh"
cat "$work/batch1" "$work/batch2" | model_apply
[[ $(grep -c '|y|' "$work/live") -ge 1 ]] || fail "the input no longer holds a withdrawal"

run() { timeout 60 "$cli" --db "$store" "$@" || fail "totalplace --db $store $* exited $?"; }
run export records >"$work/records.csv"
run export records --format jsonl --out "$work/records.jsonl" --meta "$work/records.meta"
run export totals --format csv --out "$work/totals.csv"
run export totals --format jsonl >"$work/totals.jsonl"
run totals --by neighbourhood --format csv >"$work/cli-neighbourhood.csv"
run totals --by body --format csv >"$work/cli-body.csv"
run totals --by month --format csv >"$work/cli-month.csv"
run totals --format csv >"$work/cli-total.csv"
run stats --format json >"$work/stats.json"
ls "$work" | grep -q '\.tmp-' && fail "a temporary file was left beside --out: $(ls "$work")"

python3 - "$work" "$store_id" <<'PY' || fail "the exports do not agree (above)"
import csv, json, sys, collections
work, store_id = sys.argv[1], sys.argv[2]
problems = []
def check(ok, what):
    if not ok:
        problems.append(what)

def pounds(p):
    a = abs(p)
    return ("-" if p < 0 else "") + "%d.%02d" % (a // 100, a % 100)

def yn(v):
    return "y" if v in (True, "yes") else "n"

# The model: the final version of every stored key, as tp_fill's input lines.
model = sorted(open(work + "/live", encoding="utf-8").read().splitlines())

with open(work + "/records.csv", newline="", encoding="utf-8") as f:
    csv_records = list(csv.DictReader(f))
jsonl_records = [json.loads(l) for l in open(work + "/records.jsonl", encoding="utf-8")]
for name, rows in (("csv", csv_records), ("jsonl", jsonl_records)):
    lines = sorted("|".join([r["body_id"], r["record_id"], str(r["revision"]), r["neighbourhood"],
                             r["service"], r["period"], str(r["amount_pence"]), yn(r["poolable"]),
                             yn(r["withdrawn"]), r["supplier"], r["description"]]) for r in rows)
    check(lines == model, "records %s differ from the model:\n  %s\n  %s" % (name, lines, model))
    for r in rows:
        p = int(r["amount_pence"])
        check(r["amount"] == pounds(p), "records %s: amount %s for %d pence" % (name, r["amount"], p))
        y, m = int(r["period"][:4]), int(r["period"][5:])
        fy = y if m >= 4 else y - 1
        check(r["fiscal_year"] == "%d-%02d" % (fy, (fy + 1) % 100), "fiscal year of %s" % r)
check(len(csv_records) == len(model) > 5, "records: %d rows, model %d" % (len(csv_records), len(model)))

with open(work + "/totals.csv", newline="", encoding="utf-8") as f:
    csv_totals = list(csv.DictReader(f))
jsonl_totals = [json.loads(l) for l in open(work + "/totals.jsonl", encoding="utf-8")]
check(len(csv_totals) == len(jsonl_totals) > 5, "totals: %d csv rows, %d jsonl" % (len(csv_totals), len(jsonl_totals)))
for a, b in zip(csv_totals, jsonl_totals):
    check(int(a["amount_pence"]) == b["amount_pence"] and a["amount"] == b["amount"] ==
          pounds(b["amount_pence"]) and a["neighbourhood"] == b["neighbourhood"] and
          a["service"] == b["service"] and int(a["records"]) == b["records"],
          "totals rows differ: %s / %s" % (a, b))

def pence_of(text):  # exact: no float for the comparison itself
    neg = text.startswith("-")
    whole, frac = text.lstrip("-").split(".")
    return (-1 if neg else 1) * (int(whole) * 100 + int(frac))

def cli_exact(name):
    with open(work + "/cli-%s.csv" % name, newline="", encoding="utf-8") as f:
        return {r[name]: (pence_of(r["total"]), int(r["records"])) for r in csv.DictReader(f)}

live = [r for r in jsonl_records if not r["withdrawn"]]
for name, key in (("neighbourhood", "neighbourhood"), ("body", "body_id"), ("month", "period")):
    expected = cli_exact(name)
    for label, rows, count in (("totals", jsonl_totals, lambda r: r["records"]),
                               ("records", live, lambda r: 1)):
        sums = collections.defaultdict(lambda: [0, 0])
        for r in rows:
            sums[r[key]][0] += r["amount_pence"]
            sums[r[key]][1] += count(r)
        got = {k: tuple(v) for k, v in sums.items()}
        check(got == expected, "%s re-added by %s: %s, the CLI says %s" % (label, name, got, expected))
with open(work + "/cli-total.csv", newline="", encoding="utf-8") as f:
    grand = pence_of(next(csv.DictReader(f))["total"])
meta = json.load(open(work + "/records.meta"))
stats = json.load(open(work + "/stats.json"))
check(meta["store_id"] == store_id, "meta store id %s, store %s" % (meta["store_id"], store_id))
check(meta["amount_pence"] == grand, "meta amount %s, CLI total %s" % (meta["amount_pence"], grand))
check(meta["rows"] == len(model) == int(stats["counters"]["records_stored"]),
      "meta rows %s, model %d, stats %s" % (meta["rows"], len(model), stats["counters"]["records_stored"]))
check(meta["withdrawn"] == sum(1 for l in model if l.split("|")[8] == "y"), "meta withdrawn")
check(isinstance(meta["commit"], int) and meta["commit"] >= 2, "meta commit %s" % meta["commit"])
for p in problems:
    print("  " + p, file=sys.stderr)
print("records %d, cells %d, grand total %d pence, commit %d" % (len(model), len(csv_totals), grand, meta["commit"]))
sys.exit(1 if problems else 0)
PY

# A FIFO or /dev/stdout as --out is written in place: never replaced by a plain file.
mkfifo "$work/fifo"
timeout 30 cat "$work/fifo" >"$work/from-fifo" &
reader=$!
run export totals --out "$work/fifo"
wait $reader || fail "reading the FIFO failed"
[[ -p $work/fifo ]] || fail "export --out FIFO replaced the FIFO with a plain file"
cmp -s "$work/from-fifo" "$work/totals.csv" || fail "the export through a FIFO differs from --out FILE"
run export totals --out /dev/stdout | cmp -s - "$work/totals.csv" || fail "export --out /dev/stdout differs"
[[ -c /dev/stdout || -p /dev/stdout || -L /dev/stdout ]] || fail "/dev/stdout is no longer a device"
ls -a "$work" | grep -q '\.tmp-' && fail "a temporary file was left: $(ls -a "$work")"
status=0
"$cli" --db "$store" export totals --out "$work" 2>"$work/folder.err" || status=$?
((status == 1)) && grep -q "is a folder" "$work/folder.err" || fail "export --out FOLDER: exit $status, $(cat "$work/folder.err")"

# An empty store exports a header alone (CSV) or nothing (JSON Lines).
empty=$work/empty
"$collector" init --state-dir "$empty" >/dev/null 2>&1 || fail "init of $empty failed"
[[ $("$cli" --db "$empty" export totals | tr -d '\r') == "neighbourhood,body_id,service,period,fiscal_year,poolable,amount_pence,amount,records" ]] ||
  fail "the empty store's totals export is not the header alone"
[[ -z $("$cli" --db "$empty" export records --format jsonl) ]] || fail "the empty store's JSON Lines export is not empty"

# Damage: one flipped bit in one record stops the export, loudly, and leaves no --out file.
cp -r "$store" "$work/damaged"
rm -f "$work/damaged/lock.mdb"
"$flip" "$work/damaged" records "GB-LAE-BNS|T-0003" >/dev/null || fail "tp_flip failed"
for format in csv jsonl; do
  status=0
  "$cli" --db "$work/damaged" export records --format $format --out "$work/damaged.$format" \
    2>"$work/damaged.err" || status=$?
  ((status == 65)) || fail "export of a damaged store ($format) exited $status, expected 65"
  grep -qF 'the value of key "GB-LAE-BNS|T-0003" in database "records" fails its checksum' "$work/damaged.err" ||
    fail "the damage message does not name the key: $(cat "$work/damaged.err")"
  [[ ! -e $work/damaged.$format ]] || fail "a damaged export left --out $work/damaged.$format"
  ls "$work" | grep -q '\.tmp-' && fail "a damaged export left a temporary file: $(ls "$work")"
done
status=0
"$cli" --db "$work/damaged" export records >"$work/damaged.stdout" 2>/dev/null || status=$?
((status == 65)) || fail "export of a damaged store to stdout exited $status, expected 65"
# The cells are sound: their export still works.
"$cli" --db "$work/damaged" export totals >/dev/null || fail "the damaged store's sound totals do not export"

# export reads the folder: --collector is refused, naming what to do.
status=0
"$cli" --collector "ipc://$work/none.sock" --allow-plain export totals 2>"$work/refused.err" || status=$?
((status == 2)) || fail "export --collector exited $status, expected 2"
grep -q "give --db DIR" "$work/refused.err" || fail "export --collector: $(cat "$work/refused.err")"
echo "test_export: OK"
