#!/usr/bin/env bash
# Installs the Debian 12 packages totalplace needs to build, test and run; does nothing when all are
# present. Run as root (or with sudo). Why each one is there: docs/dependencies.md.
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libzmq3-dev libczmq-dev libsodium-dev
  libprotobuf-c-dev protobuf-c-compiler
  liblmdb-dev lmdb-utils
  libcsv-dev libjansson-dev
  libsystemd-dev libmicrohttpd-dev prometheus curl
  libcmocka-dev gawk jq python3
  clang libclang-rt-14-dev valgrind procps psmisc
  systemd util-linux
  dpkg-dev lintian man-db groff-base adduser
  chromium fonts-dejavu-core
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
