#!/usr/bin/env bash
# Builds the Debian package from this tree (docs/install.md): a Release build in build-deb/ with
# Debian's own hardening flags, then CPack. Prints the package's path.
#   bash deploy/build-deb.sh [BUILD_DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-deb}
command -v dpkg-buildflags >/dev/null || { echo "build-deb: dpkg-buildflags is needed (dpkg-dev: deploy/install-deps.sh)" >&2; exit 1; }
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DTOTALPLACE_WERROR=ON -DTOTALPLACE_TESTS=OFF \
  -DCMAKE_C_FLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
  -DCMAKE_EXE_LINKER_FLAGS="$(dpkg-buildflags --get LDFLAGS)" >/dev/null
cmake --build "$build" -j "$(nproc)" --target totalplace-collector totalplace totalplace-agent \
  man_pages deb_changelog >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
(cd "$build" && cpack -G DEB >cpack.log 2>&1) || { cat "$build/cpack.log" >&2; exit 1; }
ls "$build"/totalplace_*.deb
