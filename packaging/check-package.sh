#!/usr/bin/env bash
# Builds the Debian package and checks it without installing it on this
# machine: contents, conffiles, dependencies, maintainer scripts, the unit
# (systemd-analyze verify and its security exposure), and that the packaged
# binary, unpacked into a directory, checks its installed default config.
#   packaging/check-package.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build-deb}

cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
  -DCMAKE_INSTALL_PREFIX=/usr -DREGENTRA_SYSTEM_INSTALL=ON >/dev/null
cmake --build "$dir" -j "$(nproc)" >/dev/null
(cd "$dir" && cpack -G DEB >/dev/null)
deb=$(ls "$dir"/regentra-runner_*_amd64.deb)
echo "package: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

fail() { echo "check-package: $*" >&2; exit 1; }
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/regentra-runner \
         ./usr/lib/regentra-runner/plugins/ninjaone-mapping.so \
         ./usr/lib/regentra-runner/plugins/ninjaone-assets.so \
         ./usr/lib/regentra-runner/plugins/ninjaone-evidence.so \
         ./usr/include/regentra/plugin.h ./usr/include/regentra/devsrc.h \
         ./usr/include/regentra/kit.h ./usr/include/regentra/kit/client.h \
         ./usr/include/regentra/kit/card.h \
         ./usr/share/regentra-runner/migrations/0001_runner_queue.sql \
         ./etc/regentra-runner/runner.conf \
         ./etc/regentra-runner/conf.d/20-ninjaone-assets.conf.example \
         ./lib/systemd/system/regentra-runner.service \
         ./usr/lib/sysusers.d/regentra-runner.conf \
         ./usr/lib/tmpfiles.d/regentra-runner.conf \
         ./usr/share/man/man8/regentra-runner.8; do
  grep -qx "$f" <<<"$contents" || fail "$f is missing from the package"
done
for f in regentra-sdk.pc libregentra_kit.a libregentra_devsrc.a; do
  grep -q "/$f\$" <<<"$contents" || fail "$f is missing from the package"
done
ctrl=$(mktemp -d)
trap 'rm -rf "$ctrl"' EXIT
dpkg-deb -e "$deb" "$ctrl/DEBIAN"
grep -qx /etc/regentra-runner/runner.conf "$ctrl/DEBIAN/conffiles" ||
  fail "runner.conf is not a conffile"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libuv1 libcurl4 libjansson4 libpq5 libsodium23 libmicrohttpd12 libsystemd0; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
echo "depends: $depends"
for s in postinst prerm postrm; do
  [ -x "$ctrl/DEBIAN/$s" ] || fail "$s is missing"
  sh -n "$ctrl/DEBIAN/$s" || fail "$s does not parse"
done

# The unit: valid (its commands pointed at the unpacked binary), and its
# exposure as systemd rates it.
dpkg-deb -x "$deb" "$ctrl/root"
unit=$ctrl/root/lib/systemd/system/regentra-runner.service
command -v systemd-analyze >/dev/null || fail "systemd-analyze is not installed"
sed "s|/usr/bin/regentra-runner|$ctrl/root/usr/bin/regentra-runner|g" "$unit" \
  >"$ctrl/regentra-runner.service"
systemd-analyze verify --man=no --recursive-errors=no \
  "$ctrl/regentra-runner.service" || fail "systemd-analyze verify refuses the unit"
echo "systemd-analyze verify: ok"
exposure=$(systemd-analyze security --offline=true "$unit" 2>/dev/null |
           sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: exposure $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.5) }' ||
  fail "exposure ${exposure:-unknown} is above 2.5"

# The packaged binary with its installed defaults (paths rewritten into the
# unpacked tree): the default config checks clean.
conf=$ctrl/root/etc/regentra-runner/runner.conf
sed -i "s|= /usr/|= $ctrl/root/usr/|; s|= /var/lib/regentra-runner|= $ctrl/state|" "$conf"
sed -i "s|^master_key_file = .*|master_key_file = $ctrl/master.key|" "$conf"
(umask 077; printf '1 %s\n' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$ctrl/master.key")
chmod 755 "$ctrl" "$ctrl/root"
"$ctrl/root/usr/bin/regentra-runner" check-config -c "$conf" ||
  fail "the packaged default configuration does not check"
echo "package checks: ok"
