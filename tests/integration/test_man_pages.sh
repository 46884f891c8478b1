# test_man_pages: every manual page says what its program's --help says. Every long option --help
# lists is in the page; every config key --help lists is in the daemon's page (generated from the
# same settings table at build time: this checks that pipeline); every page renders without a
# warning from groff.
source "$(dirname "$0")/lib.sh"
command -v groff >/dev/null || fail "groff is needed (package groff-base: deploy/install-deps.sh)"
MAN=$BIN/man
pages=("$MAN/totalplace-collector.8:$COLLECTOR" "$MAN/totalplace-agent.8:$AGENT" "$SRC/docs/totalplace.1:$CLI_BIN")
for pair in "${pages[@]}"; do
  page=${pair%%:*} program=${pair#*:}
  [[ -s $page ]] || fail "$page is missing (the build makes it: target man_pages)"
  name=$(basename "$program")
  # The page as text, with roff's escaped hyphens as plain ones.
  sed -e 's/\\-/-/g' -e 's/\\&//g' "$page" >"$WORK/$name.page"
  "$program" --help >"$WORK/$name.help"
  options=$(grep -oE -- '--[a-z][a-z-]+' "$WORK/$name.help" | sort -u)
  [[ -n $options ]] || fail "$name --help lists no option"
  for option in $options; do
    grep -qF -- "$option" "$WORK/$name.page" || fail "$page does not document $option (in $name --help)"
  done
  keys=$(gawk '/^Config keys/ { on = 1; next } on && $1 ~ /^[a-z_]+\/[a-z_]+$/ { print $1 }' "$WORK/$name.help")
  for key in $keys; do
    grep -qF -- "$key" "$WORK/$name.page" || fail "$page does not document $key (in $name --help)"
  done
  groff -man -ww -z "$page" 2>"$WORK/$name.groff" || fail "groff cannot read $page"
  [[ ! -s $WORK/$name.groff ]] || fail "groff warns about $page: $(cat "$WORK/$name.groff")"
  note "$name: $(wc -w <<<"$options") options and $(wc -w <<<"$keys") config keys documented"
done
# The version in each page is the program's.
version=$("$COLLECTOR" --version | gawk '{ print $2 }')
for page in "$MAN/totalplace-collector.8" "$MAN/totalplace-agent.8"; do
  grep -qF "totalplace $version" "$page" || fail "$page does not carry version $version"
done
echo "1 passed, 0 failed"
