#!/usr/bin/env bash
# The end-to-end demo, called by `dev.sh demo`: a throwaway PostgreSQL, the
# NinjaOne simulator serving a small MSP fleet, and regentra-runner doing
# what an operator does on the NinjaOne integration card, then serving its
# jobs through the durable queue.
set -euo pipefail
build=${1:?usage: demo.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
runner="$build/runner/regentra-runner"
sim="$build/tests/sim/ninjaone-sim"

. "$root/packaging/pg.sh"
work=$(mktemp -d /tmp/regentra-demo.XXXXXX)
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
sql() { psql -X -q -A -t -d "$REGENTRA_DATABASE_URL" -c "$1"; }

step "starting a throwaway PostgreSQL and the NinjaOne simulator (demo fleet, region EU)"
pg_start
export REGENTRA_DATABASE_URL="$PG_DSN"
"$sim" --port 0 --fleet "$root/tests/fixtures/ninjaone/demo.json" >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 100); do grep -q '^port=' "$work/sim.out" && break; sleep 0.1; done
port=$(sed -n 's/^port=//p' "$work/sim.out")
echo "PostgreSQL on $PG_PORT, simulator on $port"

mkdir -p "$work/conf.d" "$work/plugins"
install -m 0755 "$build/plugins/"*.so "$work/plugins/"
# The master key that seals credentials at rest, and the client secret the
# operator copied from NinjaOne: files only their owner can read.
(umask 077
 printf '1 %s\n' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$work/master.key"
 printf 'demo-eu-secret\n' >"$work/ninjaone.secret")
cat >"$work/runner.conf" <<CONF
[runner]
plugin_dir = $work/plugins
state_dir = $work/state
master_key_file = $work/master.key
drain_timeout = 10s

[database]
migrations_dir = $root/runner/migrations:$root/sdk/devsrc/migrations

# The simulator stands in for https://eu.ninjarmm.com (and the US host);
# every NinjaOne plugin reads this one connection profile.
[source "ninjaone"]
base_url_eu = http://127.0.0.1:$port/eu
base_url_us = http://127.0.0.1:$port/us
CONF
# The shipped cron schedules of the asset sync and the evidence sweep.
for f in "$root"/conf.d/*-ninjaone-*.conf.example; do
  cp "$f" "$work/conf.d/$(basename "$f" .example)"
done
cat >"$work/conf.d/10-hello.conf" <<CONF
[job "hello-every-minute"]
plugin = hello
job = greet
schedule = * * * * *
CONF
rr() { show "$runner" "$@" -c "$work/runner.conf"; }

step "schema"
rr migrate
rr check-config
rr plugins

step "the platform side: an MSP, two of its PSA companies, one promoted to compliance"
msp=$(sql "INSERT INTO organization (name, kind) VALUES ('Acme IT Services', 'MSP') RETURNING id")
customer=$(sql "INSERT INTO organization (name, kind) VALUES ('Contoso Dental Group (compliance)', 'CUSTOMER') RETURNING id")
contoso=$(sql "INSERT INTO portal_company (msp_org_id, name, converted_to_organization_id) VALUES ($msp, 'Contoso Dental', $customer) RETURNING id")
sql "INSERT INTO portal_company (msp_org_id, name) VALUES ($msp, 'acme manufacturing')" >/dev/null
echo "MSP organization $msp; companies: Contoso Dental ($contoso, compliance org $customer), acme manufacturing"

step "Test Connection: a wrong region first, then the right one (nothing is saved)"
rr ninjaone test --msp-org "$msp" --region us --client-id demo-eu-client \
  --client-secret-file "$work/ninjaone.secret" || echo "(exit $?: as expected)"
rr ninjaone test --msp-org "$msp" --region eu --client-id demo-eu-client \
  --client-secret-file "$work/ninjaone.secret"

step "Save: seal the credential, audit the connect, discover organizations"
rr ninjaone connect --msp-org "$msp" --region eu --client-id demo-eu-client \
  --client-secret-file "$work/ninjaone.secret"
rr ninjaone orgs --msp-org "$msp"

step "Review organization mappings: use existing, create new (reuses the case-different name), don't sync"
rr ninjaone map --msp-org "$msp" --org 1 --use-existing "$contoso"
rr ninjaone map --msp-org "$msp" --org 5 --create-new
rr ninjaone map --msp-org "$msp" --org 2 --create-new
rr ninjaone map --msp-org "$msp" --org 4 --ignore
rr ninjaone orgs --msp-org "$msp"
rr ninjaone status --msp-org "$msp"

step "PSA asset sync: approved devices of every MAPPED organization become Asset rows"
rr ninjaone sync --msp-org "$msp"

step "compliance evidence sweep: the first one is a dry run for the ticket bridge, the second routes findings"
rr ninjaone sweep --msp-org "$msp"
rr ninjaone sweep --msp-org "$msp"
rr ninjaone status --msp-org "$msp"

step "the durable queue: an on-demand job, then serve (clock sped up 60x) for 4 seconds"
rr enqueue hello.greet '{"name":"queue"}'
now_ms=$(($(date +%s%N) / 1000000))
REGENTRA_CLOCK_START_MS=$(( (now_ms / 60000 + 1) * 60000 - 500 )) REGENTRA_CLOCK_SCALE=60 \
  "$runner" serve -c "$work/runner.conf" 2>"$work/serve.log" &
pid=$!
sleep 4
kill -TERM "$pid"
wait "$pid"
grep -E 'serving|hello|stopped' "$work/serve.log" | sed 's/^/  /'
rr jobs

step "what was written"
echo "audit log:"
sql "SELECT '  ' || o.name || ': ' || a.event || ' ' || a.details::text FROM audit_log a JOIN organization o ON o.id = a.organization_id ORDER BY a.id"
echo "mappings:"
sql "SELECT '  ' || external_org_id || ' ' || rpad(external_name, 24) || ' ' || rpad(state, 8) || ' ' || coalesce(pc.name, '-') FROM integration_org_mapping m LEFT JOIN portal_company pc ON pc.id = m.portal_company_id ORDER BY external_org_id::int"
echo "assets by company and status:"
sql "SELECT '  ' || rpad(pc.name, 24) || ' ' || a.status || ' ' || count(*) FROM asset a JOIN portal_company pc ON pc.id = a.portal_company_id GROUP BY pc.name, a.status ORDER BY 1"
echo "signals on the customer's compliance organization (aggregates only):"
sql "SELECT '  ' || o.name || ': ' || rpad(s.signal_key, 18) || ' ' || rpad(s.status, 8) || ' ' || left(s.metadata::text, 90) FROM monitoring_signal s JOIN organization o ON o.id = s.organization_id WHERE s.id IN (SELECT max(id) FROM monitoring_signal GROUP BY organization_id, signal_key) ORDER BY s.signal_key"
echo "evidence rows per internal control:"
sql "SELECT '  ' || control_id || ' ' || count(*) FROM evidence GROUP BY control_id ORDER BY 1"
echo "PSA tickets opened by the bridge:"
sql "SELECT '  ' || priority || ' ' || status || ' ' || title || ' (seen ' || occurrences || 'x)' FROM psa_ticket ORDER BY id"
echo "credential at rest (sealed, never the secret):"
sql "SELECT '  region ' || region || ', active ' || is_active || ', key version ' || key_version || ', sealed ' || left(sealed_secret, 16) || '...' FROM integration_credential"
step "demo done"
