#!/usr/bin/env bash
# test_units: every systemd unit in deploy/ passes `systemd-analyze verify` (syntax, directives,
# the timer's service, the executables), with /usr/bin/ read as this build's binaries and the
# man: links left out (the pages are there once the package is installed: test_package checks them);
# every service is rated 2.0 or below by `systemd-analyze security`; the daemons' units are
# Type=notify with a watchdog (the daemons speak sd_notify: test_monitoring).
source "$(dirname "$0")/lib.sh"
command -v systemd-analyze >/dev/null || fail "systemd-analyze is needed (package systemd: deploy/install-deps.sh)"
units=()
mkdir -p "$WORK/units"
for unit in "$SRC"/deploy/*.service "$SRC"/deploy/*.timer; do
  name=$(basename "$unit")
  name=${name/@./@demo.} # a template is verified as one instance
  sed -e "s#/usr/bin/totalplace-collector#$COLLECTOR#g" -e "s#/usr/bin/totalplace-agent#$AGENT#g" \
    -e "s#/usr/bin/totalplace #$CLI_BIN #g" -e "s#man:[^ ]*##g" "$unit" >"$WORK/units/$name"
  grep -q '/usr/bin/' "$WORK/units/$name" && fail "$name runs a program this test does not know: $(grep '/usr/bin/' "$WORK/units/$name")"
  units+=("$name")
done
((${#units[@]} >= 4)) || fail "only ${#units[@]} units found in deploy/"
[[ " ${units[*]} " == *" totalplace-backup.timer "* ]] || fail "deploy/ has no totalplace-backup.timer"
(cd "$WORK/units" && systemd-analyze verify "${units[@]}") >"$WORK/verify.log" 2>&1 ||
  fail "systemd-analyze verify: $(cat "$WORK/verify.log")"
[[ ! -s $WORK/verify.log ]] || fail "systemd-analyze verify warns: $(cat "$WORK/verify.log")"
# Hardening: `systemd-analyze security` (offline: the unit files as written) rates every service
# 2.0 or below ("OK"); the agent's unit was 8.5 (EXPOSED) before it was hardened.
for name in "${units[@]}"; do
  [[ $name == *.service ]] || continue
  (cd "$WORK/units" && systemd-analyze security --offline=true --no-pager "$name") >"$WORK/security.log" 2>&1 ||
    fail "systemd-analyze security $name: $(tail -n 5 "$WORK/security.log")"
  score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) .*/\1/p' "$WORK/security.log")
  [[ -n $score ]] || fail "systemd-analyze security printed no score for $name: $(tail -n 3 "$WORK/security.log")"
  gawk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "$name is rated $score by systemd-analyze security (at most 2.0 wanted): $(grep '✗' "$WORK/security.log" | head -n 8)"
  note "$name: exposure $score"
done
for name in totalplace-collector.service totalplace-agent@demo.service; do
  grep -qx "Type=notify" "$WORK/units/$name" || fail "$name is not Type=notify"
  grep -qE "^WatchdogSec=[0-9]+" "$WORK/units/$name" || fail "$name has no WatchdogSec"
done
# The backup unit really backs up: its command line, run against a store, makes a verified copy.
init_store "$WORK/store"
command=$(sed -n 's/^ExecStart=//p' "$WORK/units/totalplace-backup.service")
command=${command//\/var\/lib\/totalplace\/store/$WORK/store}
command=${command//\/var\/backups\/totalplace/$WORK/backups}
mkdir "$WORK/backups"
# shellcheck disable=SC2086
$command >"$WORK/backup.out" 2>&1 || fail "the backup unit's command failed: $(cat "$WORK/backup.out")"
ls "$WORK/backups" | grep -qE '^totalplace-[0-9]{8}T[0-9]{6}Z$' || fail "the backup unit's command made no backup: $(ls -A "$WORK/backups")"
note "units verified: ${units[*]}"
echo "1 passed, 0 failed"
