#!/usr/bin/env bash
# Developer and CI entry point. Run as root on Debian 12:
#   ./packaging/dev.sh demo   install what is missing, build, run the demo
#   ./packaging/dev.sh test   install what is missing, build, run every test
# Both are idempotent.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)

packages=(build-essential cmake pkg-config git ca-certificates openssl curl
          libuv1-dev libcurl4-openssl-dev libjansson-dev libpq-dev
          libsodium-dev libcriterion-dev libmicrohttpd-dev
          postgresql postgresql-contrib valgrind clang libclang-rt-14-dev
          libsystemd-dev systemd procps chromium)

say() { printf '\n== %s\n' "$*"; }

install_deps() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
      echo "dev.sh: run as root to install packages: ${missing[*]}" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

# build DIR [cmake options...]
build() {
  local dir=$1
  shift
  say "building in $dir"
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

# shellcheck source=packaging/pg.sh
. "$root/packaging/pg.sh"

# The SDK example must build out of tree against an installed SDK.
check_sdk_out_of_tree() {
  local dir=$1 prefix
  prefix=$(mktemp -d)
  say "installing into $prefix and building the SDK example out of tree"
  cmake --install "$dir" --prefix "$prefix" >/dev/null
  local work
  work=$(mktemp -d)
  cp "$root/sdk/examples/hello/hello.c" "$root/sdk/examples/hello/Makefile" "$work/"
  PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" \
    make -s -C "$work" hello.so
  test -f "$work/hello.so"
  echo "sdk example built out of tree against $prefix: ok"
  # A device source, built as its author would: its source and pkg-config.
  # The installed device-source library comes from the sanitizer build here,
  # so the plugin links the sanitizer runtimes too.
  PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" \
    sh -c 'cc -std=c11 -O2 -Wall -Wextra -Werror -fsanitize=address,undefined \
      $(pkg-config --cflags regentra-sdk) -o "$1" "$2" \
      $(pkg-config --libs regentra-sdk)' sh "$work/intune-assets.so" \
    "$root/sources/intune/intune.c"
  # The device-source template, with its own Makefile (sanitizers as above).
  cp "$root/sdk/examples/device-source/device_source.c" \
    "$root/sdk/examples/device-source/Makefile" "$work/"
  PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" \
    make -s -C "$work" device-source.so \
    CFLAGS="-O2 -Wall -Wextra -Werror -fsanitize=address,undefined"
  rm -f "$work/hello.so"
  printf '[runner]\nplugin_dir = %s\nstate_dir = %s/state\n' "$work" "$work" \
    >"$work/runner.conf"
  local listed
  listed=$("$dir/runner/regentra-runner" plugins -c "$work/runner.conf" --json)
  grep -q '"name": "intune-assets"' <<<"$listed"
  echo "intune-assets built out of tree against $prefix and loaded: ok"
  grep -q '"name": "device-source"' <<<"$listed"
  listed=$("$dir/runner/regentra-runner" plugins -c "$work/runner.conf")
  grep -q '^  sync .*\[regentra-runner example sync\]' <<<"$listed"
  echo "sdk device-source template built out of tree and loaded with its sync job: ok"
  rm -rf "$prefix" "$work"
}

cmd_test() {
  install_deps
  build "$root/build-test" -DREGENTRA_SANITIZE=ON
  pg_start
  trap pg_stop EXIT
  export REGENTRA_TEST_DSN="$PG_DSN"
  say "running the tests (AddressSanitizer + UBSan build)"
  # Plugins are dlopen'ed and unloaded: keep their symbols for leak reports.
  export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
  (cd "$root/build-test" &&
    ctest --output-on-failure -j "$jobs" --timeout 600)
  check_sdk_out_of_tree "$root/build-test"
  say "building and checking the Debian package"
  "$root/packaging/check-package.sh" "$root/build-deb"
  say "fault soak: two runners, SIGKILL, SIGHUP, a database outage, a torn plugin"
  "$root/tests/soak/soak.sh" 45 "$root/build-test"
  say "fuzzing the config reader, cron parser, NinjaOne decoders and PII guard"
  "$root/tests/fuzz/run.sh" 15 "$root/build-fuzz"
}

cmd_demo() {
  install_deps
  build "$root/build"
  bash "$root/packaging/demo.sh" "$root/build"
}

case "${1:-}" in
  test) cmd_test ;;
  demo) cmd_demo ;;
  build) install_deps; build "$root/build" ;;
  *) echo "usage: $0 demo|test|build" >&2; exit 2 ;;
esac
