#!/usr/bin/env bash
# test_report: a real collector fed by four real agents with the demo's sample exports (and one
# more record whose service name holds <&">), then `totalplace report` for the busiest
# neighbourhood through --db and through --collector (the same page), and for one fiscal year.
# Each page: nothing in it can fetch anything (no http:, https:, //, src=, url(, @import, script,
# link, img, href); headless Chromium renders it to a PNG through a recording proxy with no console
# message and no request of the page's own (a canary page with an image and a console.error shows
# that both checks see what they look for); the PNG (decoded with zlib, standard library only) is
# the window's size, not blank, and holds the charts' colours; every figure of the page equals the
# CLI's CSV answer to the penny (report_check.py parses the page with html.parser).
source "$(dirname "$0")/lib.sh"
export LC_ALL=C
command -v chromium >/dev/null || fail "chromium is needed (deploy/install-deps.sh installs it)"
command -v python3 >/dev/null || fail "python3 is needed (deploy/install-deps.sh installs it)"
CHECK=$SRC/tests/integration/report_check.py

# ---------------------------------------------------------------- delivery by real agents
start_collector
agents=("council GB-LAE-BNS council.csv" "nhs GB-NHS-02P nhs.csv"
        "police GB-PF-SYP police.csv" "dwp GB-GOV-DWP dwp.csv")
for entry in "${agents[@]}"; do
  read -r name body file <<<"$entry"
  drop "$name" "$SRC/deploy/sample/$file"
  drain_agent "$name" "$body"
done
busiest=$("$CLI" --db "$WORK/collector" --format csv neighbourhoods | gawk -F, 'NR == 2 { print $2 }')
[[ $busiest =~ ^E0[0-9]+$ ]] || fail "no busiest neighbourhood: \"$busiest\""
# Text from records must reach the page escaped: a service name with <&">, in that neighbourhood.
mkdir -p "$WORK/in"
cat >"$WORK/in/odd.csv" <<EOF
Date,Transaction Number,Amount,Supplier Name,Service Area,Expenses Type,Neighbourhood,Poolable,Revision,Withdrawn
2013-09-01,ODD-1,1234.56,,"Schools & <b>""youth""</b>",,$busiest,yes,1,no
2013-09-02,ODD-2,-0.07,,"Schools & <b>""youth""</b>",,$busiest,no,1,no
EOF
drop odd "$WORK/in/odd.csv"
drain_agent odd GB-TEST-ODD
"$CLI" --db "$WORK/collector" totals --neighbourhood "$busiest" --body GB-TEST-ODD --by service --format csv |
  grep -qF 'Schools & <b>' || fail "the record with <&\"> in its service was not stored"
note "busiest neighbourhood $busiest"

# ---------------------------------------------------------------- the pages
cd "$WORK"
out=$("$CLI" --db "$WORK/collector" report --neighbourhood "$busiest") || fail "report --db failed"
[[ $out == "totalplace-report-$busiest.html" && -s $WORK/$out ]] ||
  fail "report --db printed \"$out\", not the default page it wrote"
mv "$WORK/$out" "$WORK/db.html"
out=$("$CLI" --collector "$QUERY" report --neighbourhood "$busiest" --out "$WORK/remote.html") ||
  fail "report --collector failed"
[[ $out == "$WORK/remote.html" ]] || fail "report --collector printed \"$out\""
"$CLI" --db "$WORK/collector" report --neighbourhood "$busiest" --fiscal-year 2013-14 \
  --out "$WORK/year.html" >/dev/null || fail "report --fiscal-year failed"
ls "$WORK" | grep -q '\.tmp-' && fail "a temporary file was left beside a page: $(ls "$WORK")"
# Both sources give the same page, but for the minute it was written in the footer.
diff <(grep -v '^Written by totalplace report' "$WORK/db.html") \
  <(grep -v '^Written by totalplace report' "$WORK/remote.html") >"$WORK/pages.diff" ||
  fail "the --db and --collector pages differ: $(head -20 "$WORK/pages.diff")"
grep -qF 'Schools &amp; &lt;b&gt;&quot;youth&quot;&lt;/b&gt;' "$WORK/db.html" ||
  fail "the service name is not escaped in the page"
grep -qF '<b>' "$WORK/db.html" && fail "the page holds a raw <b> from a record"
status=0
"$CLI" --db "$WORK/collector" report --neighbourhood E09999999 --out "$WORK/none.html" \
  2>"$WORK/none.err" || status=$?
((status == 1)) || fail "a report of an unknown neighbourhood exited $status, expected 1"
grep -q "E09999999 has no records" "$WORK/none.err" || fail "unknown neighbourhood: $(cat "$WORK/none.err")"
[[ ! -e $WORK/none.html ]] || fail "a failed report left a page"

for page in db year; do
  for pattern in 'http:' 'https:' '//' 'src=' 'url(' '@import' '<script' '<link' '<img' 'href=' \
                 '<iframe' '<object' '<embed'; do
    grep -qiF -- "$pattern" "$WORK/$page.html" && fail "$page.html holds \"$pattern\": it could fetch or run something"
  done
done

# ---------------------------------------------------------------- rendered by Chromium
# A proxy that records every connection; Chromium is sent through it for every host, loopback
# included, so any request the page made would be seen.
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(64)
open(sys.argv[1], "w").write("%d\n" % s.getsockname()[1])
while True:
    c, _ = s.accept(); c.settimeout(2)
    try: data = c.recv(4096)
    except Exception: data = b""
    line = data.split(b"\r\n")[0].decode("latin-1")
    with open(sys.argv[2], "a") as log: log.write(line + "\n")
    c.close()
' "$WORK/proxy.port" "$WORK/proxy.log" &
PIDS[proxy]=$!
wait_for 10 "the recording proxy" test -s "$WORK/proxy.port"
port=$(cat "$WORK/proxy.port")

# render NAME URL SIZE: a PNG of the page, Chromium's log in NAME.chromium.log, the proxy's
# record of the requests made meanwhile in NAME.requests.
render() {
  local name=$1 url=$2 size=$3
  : >"$WORK/proxy.log"
  timeout 120 chromium --headless --disable-gpu --no-sandbox --screenshot="$WORK/$name.png" \
    --window-size="$size" --enable-logging=stderr --v=0 --user-data-dir="$WORK/chromium-$name" \
    --no-first-run --disable-background-networking --disable-component-update \
    --proxy-server="http://127.0.0.1:$port" --proxy-bypass-list="<-loopback>" \
    "$url" 2>"$WORK/$name.chromium.log" || fail "chromium could not render $url: $(tail -5 "$WORK/$name.chromium.log")"
  [[ -s $WORK/$name.png ]] || fail "chromium wrote no screenshot of $url"
  sleep 1 # a request still on its way reaches the proxy
  # Chromium's own background services (time, updates, accounts) ask Google's hosts whatever
  # the page; every other request came from the page.
  grep -vE '^(CONNECT|GET|POST) (https?://)?[a-z0-9.-]*(google\.com|googleapis\.com|gvt1\.com|gstatic\.com)[:/]' \
    "$WORK/proxy.log" | grep . >"$WORK/$name.requests" || true
}

# The canary: a page that fetches an image and logs an error must be caught by both checks.
cat >"$WORK/canary.html" <<'EOF'
<!DOCTYPE html><html><body><p>canary</p><img src="http://canary.invalid/x.png"><script>console.error("canary-error")</script></body></html>
EOF
render canary "file://$WORK/canary.html" 800,600
grep -q 'CONSOLE.*canary-error' "$WORK/canary.chromium.log" ||
  fail "the console check is blind: the canary's console.error is not in Chromium's log"
grep -q 'canary.invalid' "$WORK/canary.requests" ||
  fail "the request check is blind: the canary's image request did not reach the proxy"

for page in db year; do
  render "$page" "file://$WORK/$page.html" 1200,3000
  grep -E 'CONSOLE|Uncaught|Refused|net::ERR' "$WORK/$page.chromium.log" &&
    fail "$page.html made console messages or failed loads (above)"
  [[ ! -s $WORK/$page.requests ]] || fail "$page.html made requests: $(cat "$WORK/$page.requests")"
  python3 "$CHECK" png "$WORK/$page.png" 1200 3000 || fail "the screenshot of $page.html is not a report"
done
# The DOM Chromium built holds the tables, with the escaped service read back as its text.
timeout 120 chromium --headless --disable-gpu --no-sandbox --dump-dom --no-first-run \
  --user-data-dir="$WORK/chromium-dom" "file://$WORK/db.html" >"$WORK/dom.html" 2>/dev/null ||
  fail "chromium --dump-dom failed"
for id in bodies budgets months-table neighbourhoods; do
  grep -q "<table id=\"$id\">" "$WORK/dom.html" || fail "the rendered DOM has no table $id"
done
grep -qF 'Schools &amp; &lt;b&gt;"youth"&lt;/b&gt;' "$WORK/dom.html" || fail "the DOM does not hold the service as text"

# ---------------------------------------------------------------- the figures are the CLI's
python3 "$CHECK" figures "$WORK/db.html" "$busiest" -- "$CLI" --db "$WORK/collector" ||
  fail "the page's figures differ from the CLI's (--db)"
python3 "$CHECK" figures "$WORK/remote.html" "$busiest" -- "$CLI" --collector "$QUERY" ||
  fail "the page's figures differ from the CLI's (--collector)"
python3 "$CHECK" figures "$WORK/year.html" "$busiest" 2013-14 -- "$CLI" --db "$WORK/collector" ||
  fail "the fiscal year's page differs from the CLI's"
stop proxy || true
stop collector || fail "the collector did not stop cleanly"
note "report pages checked"
