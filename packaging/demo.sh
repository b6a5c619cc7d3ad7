#!/usr/bin/env bash
# The end-to-end demo against a throwaway setup: called by `dev.sh demo`.
set -euo pipefail
build=${1:?usage: demo.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
runner="$build/runner/regentra-runner"

work=$(mktemp -d /tmp/regentra-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/conf.d" "$work/plugins"
install -m 0755 "$build/plugins/"*.so "$work/plugins/"
cat >"$work/runner.conf" <<CONF
[runner]
plugin_dir = $work/plugins
state_dir = $work/state
drain_timeout = 10s
CONF
cat >"$work/conf.d/10-hello.conf" <<CONF
# Greets every minute.
[job "hello-every-minute"]
plugin = hello
job = greet
schedule = * * * * *
CONF

step() { printf '\n== %s\n' "$*"; }

step "regentra-runner check-config"
"$runner" check-config -c "$work/runner.conf"

step "regentra-runner plugins"
"$runner" plugins -c "$work/runner.conf"

step "regentra-runner run hello.greet name=demo"
"$runner" run hello.greet name=demo -c "$work/runner.conf" 2>/dev/null

step "regentra-runner serve (clock sped up 60x: one cron minute per second) for 4 seconds"
now_ms=$(($(date +%s%N) / 1000000))
REGENTRA_CLOCK_START_MS=$(( (now_ms / 60000 + 1) * 60000 - 500 )) REGENTRA_CLOCK_SCALE=60 \
  "$runner" serve -c "$work/runner.conf" 2>"$work/serve.log" &
pid=$!
sleep 4
kill -TERM "$pid"
wait "$pid"
grep -E 'serving|run of|stopped' "$work/serve.log"
step "demo done"
