#!/usr/bin/env bash
# Fault soak: two runners serve one durable queue on a private PostgreSQL
# while they are SIGKILLed and SIGHUPed at random, the database goes down for
# longer than the lease, and a torn plugin file is swapped in and out.
# Every run of the qprobe plugin is recorded in qprobe_run; at the end the
# soak counts, from that durable record, jobs lost and jobs run twice, and
# fails if either is non-zero or if a runner died on its own.
#
#   tests/soak/soak.sh [SECONDS] [BUILD_DIR]      (default 60, build-test)
#
# REGENTRA_SOAK_SEED fixes the random choices (the seed used is printed).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
duration=${1:-60}
build=${2:-$root/build-test}
runner=$build/runner/regentra-runner
qprobe=$build/tests/qprobe-plugin/qprobe.so
seed=${REGENTRA_SOAK_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$seed
lease_s=3
outage_s=$(( lease_s * 2 + 1 ))
children=4     # each enqueued job emits this many more when it completes

[ -x "$runner" ] && [ -f "$qprobe" ] || {
  echo "soak: build first ($runner, $qprobe)" >&2; exit 2; }

# shellcheck source=packaging/pg.sh
. "$root/packaging/pg.sh"
work=$(mktemp -d /tmp/regentra-soak.XXXXXX)
pids=("" "") logs=("" "") starts=0
cleanup() {
  local p
  for p in "${pids[@]}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT
pg_start

as=()
[ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
pg_ctl_() {
  "${as[@]}" "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c max_connections=200" \
    -m fast "$@" >/dev/null
}
psql_() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$PG_DSN" -c "$1"; }

mkdir -p "$work/plugins" "$work/conf.d"
install -m 0755 "$qprobe" "$work/plugins/qprobe.so"
chmod 755 "$work" "$work/plugins"
cat >"$work/runner.conf" <<EOF
[runner]
plugin_dir = $work/plugins
state_dir = $work/state
workers = 8
drain_timeout = 5s
log_level = info
[database]
url = $PG_DSN
migrations_dir = $root/runner/migrations:$root/sdk/devsrc/migrations
lease = ${lease_s}s
poll_interval = 200ms
retry_base = 200ms
max_attempts = 25
EOF
printf '[job "qprobe-record"]\nplugin = qprobe\njob = record\n' \
  >"$work/conf.d/10-qprobe.conf"
"$runner" migrate -c "$work/runner.conf" >/dev/null
psql_ "CREATE TABLE qprobe_run (id bigserial PRIMARY KEY, n int, key text,
       pid int, started_at timestamptz, finished_at timestamptz)"

start_runner() { # index
  starts=$(( starts + 1 ))
  logs[$1]=$work/runner$1-$starts.log
  "$runner" serve -c "$work/runner.conf" >"${logs[$1]}" 2>&1 &
  pids[$1]=$!
  echo "$(date +%s.%N) start $1 ${pids[$1]}" >>"$work/events"
}

# SIGHUP once serving: before that the signal's default action applies.
reload() { # index...
  local i
  for i in "$@"; do
    grep -q "serving:" "${logs[$i]}" || continue
    kill -HUP "${pids[$i]}" 2>/dev/null || continue # died: check_alive sees it
    reloads=$(( reloads + 1 ))
  done
}

crashes=0
# A runner that exited without being told to is a crash.
check_alive() {
  local i status
  for i in 0 1; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      status=0
      wait "${pids[$i]}" || status=$?
      echo "soak: runner $i (pid ${pids[$i]}) died on its own, status $status" >&2
      tail -n 20 "${logs[$i]}" >&2
      crashes=$(( crashes + 1 ))
      start_runner "$i"
    fi
  done
}

seeds=0
# Work arrives all along, so that every fault meets jobs in flight.
enqueue_some() {
  local k
  for k in 1 2; do
    seeds=$(( seeds + 1 ))
    "$runner" enqueue -c "$work/runner.conf" qprobe.record \
      "{\"n\":$seeds,\"sleep_ms\":$(( 500 + RANDOM % 10000 )),\"emit\":$children}" >/dev/null
  done
}

start_runner 0
start_runner 1

kills=0 reloads=0 outages=0 torn=0
declare -A killed_pids=()
start=$(date +%s)
outage_at=$(( start + duration / 3 ))
torn_at=$(( start + 2 * duration / 3 ))
while [ $(( $(date +%s) - start )) -lt "$duration" ]; do
  sleep "0.$(( 5 + RANDOM % 5 ))"
  check_alive
  enqueue_some
  now=$(date +%s)
  if [ "$outages" -eq 0 ] && [ "$now" -ge "$outage_at" ]; then
    echo "$(date +%s.%N) outage ${outage_s}s" >>"$work/events"
    pg_ctl_ stop
    sleep "$outage_s" # the fault itself: down for longer than the lease
    pg_ctl_ start
    outages=$(( outages + 1 ))
    continue
  fi
  if [ "$torn" -eq 0 ] && [ "$now" -ge "$torn_at" ]; then
    echo "$(date +%s.%N) torn plugin in" >>"$work/events"
    head -c 6000 "$qprobe" >"$work/plugins/.torn"
    mv "$work/plugins/.torn" "$work/plugins/qprobe.so"
    reload 0 1
    sleep 1
    check_alive
    install -m 0755 "$qprobe" "$work/plugins/.good"
    mv "$work/plugins/.good" "$work/plugins/qprobe.so"
    reload 0 1
    echo "$(date +%s.%N) torn plugin out" >>"$work/events"
    torn=1
    continue
  fi
  i=$(( RANDOM % 2 ))
  if [ $(( RANDOM % 3 )) -eq 0 ]; then
    killed_pids[${pids[$i]}]=1
    kill -KILL "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
    echo "$(date +%s.%N) kill $i ${pids[$i]}" >>"$work/events"
    kills=$(( kills + 1 ))
    start_runner "$i"
  else
    reload "$i"
  fi
done

# Every job finishes once the faults stop: at most a lease and a few retries.
expected=$(( seeds + seeds * children ))
finished_sql="SELECT count(DISTINCT n) FROM qprobe_run WHERE finished_at IS NOT NULL"
pending_sql="SELECT count(*) FROM runner.job WHERE name = 'qprobe.record' AND state IN ('available','running')"
deadline=$(( $(date +%s) + 180 ))
while :; do
  check_alive
  done_n=$(psql_ "$finished_sql")
  pending=$(psql_ "$pending_sql")
  [ "$done_n" -ge "$expected" ] && [ "$pending" -eq 0 ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "soak: after 180 s, $done_n of $expected jobs finished, $pending pending" >&2
    break
  fi
  sleep 0.5
done

stopped_ok=0
for i in 0 1; do
  kill -TERM "${pids[$i]}"
  status=0
  wait "${pids[$i]}" || status=$?
  [ "$status" -eq 0 ] && stopped_ok=$(( stopped_ok + 1 )) ||
    { echo "soak: runner $i exit $status on SIGTERM" >&2; tail -n 20 "${logs[$i]}" >&2; }
  pids[$i]=""
done
grep -h "AddressSanitizer\|runtime error:" "$work"/runner*.log >&2 && crashes=$(( crashes + 1 ))

expected_n="SELECT n FROM generate_series(1, $seeds) n
            UNION ALL SELECT s * 1000 + c FROM generate_series(1, $seeds) s,
                                               generate_series(0, $(( children - 1 ))) c"
lost=$(psql_ "SELECT count(*) FROM ($expected_n) e
              WHERE NOT EXISTS (SELECT 1 FROM qprobe_run r
                                WHERE r.n = e.n AND r.finished_at IS NOT NULL)")
dead=$(psql_ "SELECT count(*) FROM runner.job WHERE name = 'qprobe.record' AND state = 'dead'")
# Run twice: a job with two finished runs. The one excuse is at-least-once
# delivery after a SIGKILL: the first finisher was killed before it could
# record the completion.
doubles=$(psql_ "SELECT n || ':' || string_agg(pid::text, ',' ORDER BY finished_at)
                 FROM qprobe_run WHERE finished_at IS NOT NULL
                 GROUP BY n HAVING count(*) > 1")
doubled=0 doubled_after_kill=0
for d in $doubles; do
  first=${d#*:}
  first=${first%%,*}
  if [ -n "${killed_pids[$first]:-}" ]; then
    doubled_after_kill=$(( doubled_after_kill + 1 ))
  else
    doubled=$(( doubled + 1 ))
    echo "soak: job n=${d%%:*} finished twice (pids ${d#*:})" >&2
  fi
done
runs=$(psql_ "SELECT count(*) FROM qprobe_run")

printf 'soak: seed %s, %s s: kills %d, reloads %d, outages %d (%d s, lease %d s), torn plugin swaps %d\n' \
  "$seed" "$duration" "$kills" "$reloads" "$outages" "$outage_s" "$lease_s" "$torn"
printf 'soak: jobs %d, runs started %d, lost %d, dead %d, doubled %d (+%d re-run after a SIGKILL), crashes %d, clean stops %d/2\n' \
  "$expected" "$runs" "$lost" "$dead" "$doubled" "$doubled_after_kill" "$crashes" "$stopped_ok"
[ "$lost" -eq 0 ] && [ "$dead" -eq 0 ] && [ "$doubled" -eq 0 ] &&
  [ "$crashes" -eq 0 ] && [ "$stopped_ok" -eq 2 ] || { echo "soak: FAILED" >&2; exit 1; }
echo "soak: ok"
