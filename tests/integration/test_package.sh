# test_package: the Debian package, built from this tree, installed on this machine, used, removed
# and purged (docs/install.md). lintian finds no error; every file, the user, the folders and their
# modes are as the units and docs/security.md expect; the installed units verify; each program
# answers --version and each page is found by man; a collector and an agent run from the installed
# programs deliver a file with CURVE keys made by `totalplace keygen`; remove keeps data and
# configs, purge says what it leaves. The machine is left as the test found it.
source "$(dirname "$0")/lib.sh"
[[ $(id -u) == 0 ]] || fail "installing a package needs root"
for tool in apt-get dpkg lintian dpkg-buildflags man systemd-analyze setpriv; do
  command -v "$tool" >/dev/null || fail "$tool is needed (deploy/install-deps.sh installs it)"
done
if dpkg-query -W -f='${Status}' totalplace 2>/dev/null | grep -q 'installed'; then
  fail "the totalplace package is installed here already: this test installs and purges it, remove it first"
fi

# What was here before, so that the test leaves exactly that.
had_user=0; getent passwd totalplace >/dev/null && had_user=1
had_group=0; getent group totalplace >/dev/null && had_group=1
declare -A had=()
for path in /etc/totalplace /var/lib/totalplace /var/lib/totalplace-agent; do
  [[ -e $path ]] && had[$path]=1
done
restore_machine() {
  apt-get purge -y -qq totalplace >/dev/null 2>&1 || true
  for path in /etc/totalplace /var/lib/totalplace /var/lib/totalplace-agent; do
    [[ -n ${had[$path]:-} ]] || rm -rf "$path"
  done
  ((had_user)) || userdel totalplace >/dev/null 2>&1 || true
  ((had_group)) || groupdel totalplace >/dev/null 2>&1 || true
  systemctl daemon-reload >/dev/null 2>&1 || true
}
# The daemons first: a user cannot be deleted while its processes run.
trap 'status=$?; for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done; wait 2>/dev/null
      restore_machine; (exit $status); cleanup' EXIT

# ---------------------------------------------------------------- build and lint
note "building the package (deploy/build-deb.sh)"
deb=$(bash "$SRC/deploy/build-deb.sh" "$WORK/build-deb" 2>"$WORK/build-deb.log" | tail -n 1) \
  || fail "deploy/build-deb.sh failed: $(tail -n 20 "$WORK/build-deb.log")"
[[ -f $deb ]] || fail "no package made ($deb)"
version=$("$COLLECTOR" --version | gawk '{ print $2 }')
[[ $(basename "$deb") == "totalplace_${version}_$(dpkg --print-architecture).deb" ]] || fail "unexpected package name $(basename "$deb")"
lintian --pedantic "$deb" >"$WORK/lintian.out" 2>&1 || true
cat "$WORK/lintian.out"
grep -q '^E: ' "$WORK/lintian.out" && fail "lintian finds errors"
# Every tag lintian may still give is explained in docs/install.md.
for tag in $(gawk '/^[WIP]: / { print $3 }' "$WORK/lintian.out" | sort -u); do
  grep -qF "$tag" "$SRC/docs/install.md" || fail "lintian tag $tag is not explained in docs/install.md"
done
dpkg-deb -f "$deb" Depends | grep -q 'libczmq4' || fail "the package's dependencies were not computed from its libraries"

# ---------------------------------------------------------------- install
note "apt-get install ./$(basename "$deb")"
(cd "$(dirname "$deb")" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$(basename "$deb")") \
  >"$WORK/install.log" 2>&1 || fail "apt-get install failed: $(tail -n 20 "$WORK/install.log")"
for unit in totalplace-collector.service totalplace-backup.timer; do
  [[ $(systemctl is-enabled "$unit" 2>/dev/null || true) != enabled ]] || fail "installing enabled $unit"
  systemctl is-active --quiet "$unit" 2>/dev/null && fail "installing started $unit"
done
[[ ! -e /var/lib/totalplace/store ]] || fail "installing created a store"

mode_owner() { stat -c '%a %U:%G' "$1"; }
expect_mode() {
  local path=$1 want=$2
  [[ -e $path ]] || fail "$path is not installed"
  [[ $(mode_owner "$path") == "$want" ]] || fail "$path is $(mode_owner "$path"), expected $want"
}
for program in totalplace-collector totalplace-agent totalplace; do
  expect_mode "/usr/bin/$program" "755 root:root"
  [[ $("/usr/bin/$program" --version) == *"$version"* ]] || fail "/usr/bin/$program --version is not $version"
done
for unit in totalplace-collector.service totalplace-agent@.service totalplace-backup.service totalplace-backup.timer; do
  expect_mode "/lib/systemd/system/$unit" "644 root:root"
done
for conf in collector.conf agent-example.conf agent-council-unit.conf agent-transparency-code.conf; do
  expect_mode "/etc/totalplace/$conf" "644 root:root"
  dpkg-query -W -f='${Conffiles}' totalplace | grep -q "/etc/totalplace/$conf " || fail "$conf is not a conffile"
done
for page in totalplace-collector totalplace-agent totalplace; do
  man -w "$page" >/dev/null 2>&1 || fail "man -w $page finds no page"
done
expect_mode /usr/share/doc/totalplace/copyright "644 root:root"
expect_mode /usr/share/doc/totalplace/install.md "644 root:root"
getent passwd totalplace | gawk -F: '$3 >= 1000 || $7 !~ /nologin|false/ { exit 1 }' \
  || fail "the user totalplace is not a system user without a shell: $(getent passwd totalplace)"
expect_mode /var/lib/totalplace "750 totalplace:totalplace"
expect_mode /var/lib/totalplace-agent "750 totalplace:totalplace"
expect_mode /etc/totalplace/keys "750 root:totalplace"
expect_mode /etc/totalplace/authorised "755 root:root"
(cd /lib/systemd/system && systemd-analyze verify totalplace-collector.service totalplace-agent@demo.service \
  totalplace-backup.service totalplace-backup.timer) >"$WORK/verify.log" 2>&1 \
  || fail "systemd-analyze verify of the installed units: $(cat "$WORK/verify.log")"
[[ ! -s $WORK/verify.log ]] || fail "systemd-analyze verify warns: $(cat "$WORK/verify.log")"
note "installed: programs, units, conffiles, man pages, the user and folders as documented"

# ---------------------------------------------------------------- a delivery from the installed programs
note "a collector and an agent from the installed programs, with CURVE keys"
keys=/etc/totalplace/keys auth=/etc/totalplace/authorised
/usr/bin/totalplace keygen pkgtest-collector --role collector --dir "$keys" >/dev/null || fail "keygen (collector)"
/usr/bin/totalplace keygen pkgtest-agent --role agent --bodies GB-LAE-BNS --dir "$keys" >/dev/null || fail "keygen (agent)"
/usr/bin/totalplace keygen pkgtest-query --role query --dir "$keys" >/dev/null || fail "keygen (query)"
for name in pkgtest-collector pkgtest-agent pkgtest-query; do
  chgrp totalplace "$keys/$name.cert_secret" && chmod 0640 "$keys/$name.cert_secret"
done
cp "$keys/pkgtest-agent.cert" "$keys/pkgtest-query.cert" "$auth/"
store=/var/lib/totalplace/pkgtest-store
state=/var/lib/totalplace-agent/pkgtest
run_as() { setpriv --reuid=totalplace --regid=totalplace --init-groups -- "$@"; }
install -d -o totalplace -g totalplace -m 0750 /var/lib/totalplace/pkgtest-run
ingest="ipc:///var/lib/totalplace/pkgtest-run/ingest"
query="ipc:///var/lib/totalplace/pkgtest-run/query"
run_as /usr/bin/totalplace-collector init --state-dir "$store" >"$WORK/init.out" || fail "init as totalplace failed"
# setpriv execs the program, so $! is the collector itself (a shell function would not be).
setpriv --reuid=totalplace --regid=totalplace --init-groups -- /usr/bin/totalplace-collector \
  --state-dir "$store" --ingest "$ingest" --query "$query" \
  --set "collector/curve_secret_cert=$keys/pkgtest-collector.cert_secret" \
  --set "collector/authorised_certs=$auth" >>"$WORK/pkg-collector.log" 2>&1 &
PIDS[pkg-collector]=$!
wait_for 20 "the installed collector's socket" test -S /var/lib/totalplace/pkgtest-run/ingest
install -d -o totalplace -g totalplace -m 0750 "$state" "$state/inbox"
cp "$SRC/deploy/sample/council.csv" "$state/inbox/council.csv"
chown totalplace:totalplace "$state/inbox/council.csv"
timeout 120 setpriv --reuid=totalplace --regid=totalplace --init-groups -- /usr/bin/totalplace-agent --id pkgtest-agent --body GB-LAE-BNS \
  --inbox "$state/inbox" --state-dir "$state/state" --collector "$ingest" \
  --set "agent/curve_secret_cert=$keys/pkgtest-agent.cert_secret" \
  --set "agent/collector_public_cert=$keys/pkgtest-collector.cert" --once >"$WORK/pkg-agent.log" 2>&1 \
  || fail "the installed agent did not deliver: $(tail -n 20 "$WORK/pkg-agent.log")"
stop pkg-collector TERM || fail "the installed collector did not stop cleanly"
# The store's total equals the reference of the file, read by the installed CLI as the query user
# would see it from the store itself.
want=$(expected "GB-LAE-BNS" "$SRC/deploy/sample/council.csv" | gawk '$1 == "grand" { print $2, $3 }')
got=$(run_as /usr/bin/totalplace --db "$store" --format csv totals | gawk -F, 'NR == 2 { p = $1; sub(/\./, "", p); print p + 0, $2 + 0 }')
[[ $got == "$want" ]] || fail "the installed programs' total is $got, the reference $want"
note "delivered through CURVE: $got (pence, records), as the reference"
rm -rf "$store" "$state" /var/lib/totalplace/pkgtest-run
rm -f "$keys"/pkgtest-* "$auth"/pkgtest-*

# ---------------------------------------------------------------- remove and purge
note "apt-get remove: data, keys and configs stay"
touch /var/lib/totalplace/kept-data
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq totalplace >"$WORK/remove.log" 2>&1 || fail "apt-get remove failed"
[[ ! -e /usr/bin/totalplace-collector ]] || fail "remove left the programs"
[[ -f /etc/totalplace/collector.conf ]] || fail "remove deleted the configs"
[[ -f /var/lib/totalplace/kept-data ]] || fail "remove deleted data"
note "apt-get purge: configs go, and it says what it leaves"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq totalplace >"$WORK/purge.log" 2>&1 || fail "apt-get purge failed"
[[ ! -e /etc/totalplace/collector.conf ]] || fail "purge left the conffiles"
[[ -f /var/lib/totalplace/kept-data ]] || fail "purge deleted data"
grep -q "left in place on purpose" "$WORK/purge.log" || fail "purge did not say what it leaves: $(cat "$WORK/purge.log")"
grep -q "/var/lib/totalplace" "$WORK/purge.log" || fail "purge did not name the store's folder"
dpkg-query -W -f='${Status}' totalplace 2>/dev/null | grep -q 'installed' && fail "the package is still installed"
rm -f /var/lib/totalplace/kept-data
echo "1 passed, 0 failed"
