#!/usr/bin/env bash
# test_config_keys: every config key a message or a doc names is one the config accepts. Tokens
# that look like keys (section/name) are taken from the C string literals of collector/, agents/
# and proto/ (adjacent literals joined, comments left out) and from docs/, and each is checked
# against the keys `totalplace-collector --help` and `totalplace-agent --help` list. A token is:
#   a key both --help list                                  -> fine
#   a path of the source tree (TOKEN, TOKEN.c, TOKEN.h)      -> fine (collector/store, proto/curve)
#   in ALLOWED below                                         -> fine (said why there)
#   of a section the keys have (collector/, log/, ...)       -> FAIL: no such key
#   named like a key (its name is a key's name, or has a _)  -> FAIL: a key of the wrong section
#   anything else (yes/no, records/s, encode/decode)         -> not a key: ignored
# So "raise max_map_size" passes unseen, but "collector/max_map_size" or "limits/max_map_size_mb"
# fail. Run after merging branches that add keys: the test reads the binaries' own lists.
source "$(dirname "$0")/lib.sh"

# Tokens that look like keys and are not, each with the reason.
ALLOWED=(
  # none yet: add "section/name  # why" entries here, one a line
)

"$COLLECTOR" --help >"$WORK/collector-help.txt" || fail "totalplace-collector --help failed"
"$AGENT" --help >"$WORK/agent-help.txt" || fail "totalplace-agent --help failed"
cat "$WORK/collector-help.txt" "$WORK/agent-help.txt" |
  gawk '/^Config keys/ { on = 1; next } on && match($0, /^  ([a-z_]+\/[a-z0-9_]+)( |$)/, m) { print m[1] }' |
  sort -u >"$WORK/keys.txt"
(($(wc -l <"$WORK/keys.txt") >= 40)) || fail "--help lists only $(wc -l <"$WORK/keys.txt") keys: the list is not being read: $(cat "$WORK/keys.txt")"
grep -qx 'collector/max_map_size_mb' "$WORK/keys.txt" || fail "collector/max_map_size_mb is not among the keys --help lists"
grep -qx 'agent/body_id' "$WORK/keys.txt" || fail "agent/body_id is not among the keys --help lists"

# literals FILE...: "file:line<TAB>text" for each C string literal (adjacent ones joined), with
# comments and character constants skipped.
literals() {
  gawk '
    BEGIN { RS = "^$" }
    {
      text = $0; n = length(text); line = 1; state = "code"; lit = ""; at = 0
      for (i = 1; i <= n; i++) {
        c = substr(text, i, 1)
        if (c == "\n") line++
        if (state == "code") {
          two = substr(text, i, 2)
          if (two == "/*") { state = "block"; i++ }
          else if (two == "//") state = "line"
          else if (c == "\x27") state = "char"
          else if (c == "\"") { if (!pending) at = line; state = "string" }
          else if (c !~ /[ \t\n\r]/) { flush() }
        } else if (state == "block") {
          if (substr(text, i, 2) == "*/") { state = "code"; i++ }
        } else if (state == "line") {
          if (c == "\n") state = "code"
        } else if (state == "char") {
          if (c == "\\") i++
          else if (c == "\x27") state = "code"
        } else if (state == "string") {
          if (c == "\\") { lit = lit substr(text, i, 2); i++ }
          else if (c == "\"") { state = "code"; pending = 1 }
          else lit = lit c
        }
      }
      flush()
    }
    function flush() { if (pending && lit != "") print FILENAME ":" at "\t" lit; lit = ""; pending = 0 }
  ' "$@"
}

cd "$SRC"
{
  literals collector/*.c collector/*.h agents/*.c agents/*.h proto/*.c proto/*.h
  gawk '{ print FILENAME ":" FNR "\t" $0 }' docs/*.md docs/*.1
} >"$WORK/texts.txt"
(($(wc -l <"$WORK/texts.txt") > 1000)) || fail "too few texts were read ($(wc -l <"$WORK/texts.txt")): the extraction is broken"
grep -q 'collector/state_dir' "$WORK/texts.txt" || fail "the texts do not hold collector/state_dir: the extraction is broken"

# Every token with where it stands: "token<TAB>file:line". A token is not part of a longer path
# (no / . - % before it, no / - after it) and not a file name (no .ext after it).
gawk -F'\t' '{
  rest = $2
  while (match(rest, /[a-z][a-z_]*\/[a-z][a-z0-9_]*/)) {
    before = RSTART > 1 ? substr(rest, RSTART - 1, 1) : ""
    token = substr(rest, RSTART, RLENGTH)
    after = substr(rest, RSTART + RLENGTH, 2)
    rest = substr(rest, RSTART + RLENGTH)
    if (before ~ /[A-Za-z0-9_\/.%-]/ || after ~ /^[\/A-Za-z0-9_-]/ || after ~ /^\.[A-Za-z0-9]/)
      continue
    print token "\t" $1
  }
}' "$WORK/texts.txt" | sort -u >"$WORK/tokens.txt"

declare -A KEYS=() SECTIONS=() NAMES=() ALLOW=()
while read -r key; do
  KEYS[$key]=1
  SECTIONS[${key%%/*}]=1
  NAMES[${key#*/}]=1
done <"$WORK/keys.txt"
for entry in "${ALLOWED[@]}"; do ALLOW[${entry%% *}]=1; done

bad=0 checked=0
while IFS=$'\t' read -r token where; do
  section=${token%%/*} name=${token#*/}
  if [[ -n ${KEYS[$token]:-} ]]; then
    checked=$((checked + 1))
    continue
  fi
  [[ -e $token || -e $token.c || -e $token.h ]] && continue
  [[ -n ${ALLOW[$token]:-} ]] && continue
  if [[ -n ${SECTIONS[$section]:-} ]]; then
    echo "FAIL: $where names $token: no such key (the config accepts: $(grep "^$section/" "$WORK/keys.txt" | tr '\n' ' '))" >&2
    bad=$((bad + 1))
  elif [[ -n ${NAMES[$name]:-} || $name == *_* ]]; then
    echo "FAIL: $where names $token: it looks like a key, and the config has none of that name (keys: $(grep "/$name\$" "$WORK/keys.txt" | tr '\n' ' '))" >&2
    bad=$((bad + 1))
  fi
done <"$WORK/tokens.txt"
# A key named in a message without its section is fine ("collector/map_size_mb or
# max_map_size_mb"), but not one cut short of its unit: "raise max_map_size" is no key.
gawk -F'\t' -v keys="$WORK/keys.txt" '
  BEGIN { while ((getline key < keys) > 0) { split(key, part, "/"); name[part[2]] = 1 } }
  $1 ~ /\.[ch]:[0-9]+$/ {
    rest = $2
    while (match(rest, /[A-Za-z0-9_\/.%-]?[a-z][a-z0-9]*_[a-z0-9_]+/)) {
      word = substr(rest, RSTART, RLENGTH); rest = substr(rest, RSTART + RLENGTH)
      if (word ~ /^[A-Za-z0-9_\/.%-]/ && substr(word, 1, 1) !~ /[a-z]/) continue
      if (word in name) continue
      for (n in name) if (index(n, word "_") == 1) { print "FAIL: " $1 " names " word ": the key is " n " (with its unit)"; break }
    }
  }' "$WORK/texts.txt" >"$WORK/unit-less.txt"
if [[ -s $WORK/unit-less.txt ]]; then
  cat "$WORK/unit-less.txt" >&2
  bad=$((bad + $(wc -l <"$WORK/unit-less.txt")))
fi
((bad == 0)) || fail "$bad places name a config key the config does not accept"
((checked > 100)) || fail "only $checked mentions of real keys were found: the test is not reading what it should"
note "$checked mentions of config keys in messages and docs, all accepted by the config"
echo "1 passed, 0 failed"
