#!/usr/bin/env bash
# test_schema.sh DSN: apply sdk/devsrc/migrations to a fresh, empty database
# and check that the platform schema accepts valid states and refuses wrong
# ones. Each assertion runs in its own transaction that is rolled back, on top
# of a small committed fixture.
#
# Optional: CROSSWALK=path/to/CROSSWALK.md also checks that
# gen-control-catalog.sh reproduces the committed 1002_control_catalog.sql.
#
# Last line: "N passed, N failed". Exit status 0 only when nothing failed.
set -u
export LC_ALL=C

if [ $# -ne 1 ]; then
  echo "usage: $0 DSN   (a fresh, empty database)" >&2
  exit 2
fi
dsn=$1
here=$(cd "$(dirname "$0")" && pwd)
mig=$(cd "$here/../../sdk/devsrc/migrations" && pwd)

passed=0
failed=0
ok()  { passed=$((passed + 1)); printf 'ok   %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/     /'; }
finish() { printf '%d passed, %d failed\n' "$passed" "$failed"; [ "$failed" -eq 0 ]; exit $?; }

PSQL=(psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$dsn")

# run SQL in a transaction that is rolled back; stderr+stdout on stdout.
run_rolled_back() { printf 'BEGIN;\n%s\n;\nROLLBACK;\n' "$1" | "${PSQL[@]}" -f - 2>&1; }

# must_fail NAME PATTERN SQL: SQL must fail with an error line matching
# "ERROR:  PATTERN" (PATTERN starts with the SQLSTATE).
must_fail() {
  local out
  if out=$(run_rolled_back "$3"); then
    bad "$1" "succeeded; expected error $2"
  elif printf '%s\n' "$out" | grep -qE -- "ERROR: +$2"; then
    ok "$1"
  else
    bad "$1" "wrong error; expected $2; got: $out"
  fi
}

# must_pass NAME SQL: SQL must succeed (then rolled back).
must_pass() {
  local out
  if out=$(run_rolled_back "$2"); then ok "$1"; else bad "$1" "$out"; fi
}

# expect NAME WANT SQL: SQL (committed, one value or rows joined by "|")
# must print exactly WANT.
expect() {
  local got
  if got=$("${PSQL[@]}" -At -c "$3" 2>&1) && [ "$got" = "$2" ]; then
    ok "$1"
  else
    bad "$1" "want: $2
got:  $got"
  fi
}

# ---------------------------------------------------------------------------
# Apply the migrations
# ---------------------------------------------------------------------------

if ! "${PSQL[@]}" -At -c "SELECT 1" >/dev/null 2>&1; then
  bad "connect to database" "cannot connect with: $dsn"
  finish
fi
expect "database starts empty" "0" \
  "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public'"

mapfile -t files < <(cd "$mig" && ls | grep -E '^[0-9]+_.*\.sql$' | sort -n)
if [ "${#files[@]}" -eq 0 ]; then
  bad "migration files found in $mig"
  finish
fi

bad_numbers=""
for f in "${files[@]}"; do
  n=${f%%_*}
  [ "$((10#$n))" -ge 1000 ] || bad_numbers="$bad_numbers $f"
done
[ -z "$bad_numbers" ] && ok "migration numbers are >= 1000" \
  || bad "migration numbers are >= 1000" "$bad_numbers"

tx_stmts=$(cd "$mig" && grep -niE '^[[:space:]]*(BEGIN|COMMIT|ROLLBACK|START[[:space:]]+TRANSACTION)[[:space:]]*;' "${files[@]}")
[ -z "$tx_stmts" ] && ok "migrations contain no BEGIN/COMMIT" \
  || bad "migrations contain no BEGIN/COMMIT" "$tx_stmts"

apply_all() {
  local f out
  for f in "${files[@]}"; do
    if ! out=$(psql -X -q -v ON_ERROR_STOP=1 -1 -d "$dsn" -f "$mig/$f" 2>&1); then
      bad "$1: $f" "$out"
      return 1
    fi
  done
  ok "$1 (${#files[@]} files)"
}
apply_all "apply migrations in order" || finish

expect "no runner schema created by these migrations" "0" \
  "SELECT count(*) FROM pg_namespace WHERE nspname = 'runner'"
expect "platform tables are in public" \
  "asset|asset_sync_run|audit_log|control_framework|control_requirement|evidence|integration_credential|integration_org_mapping|internal_control|monitoring_signal|msp_source_priority|organization|portal_company|psa_ticket|signal_control|signal_definition" \
  "SELECT string_agg(table_name, '|' ORDER BY table_name) FROM information_schema.tables
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"

# ---------------------------------------------------------------------------
# Control catalog
# ---------------------------------------------------------------------------

expect "ten internal controls with their names" \
  "IC-013 Protection from Malicious Software|IC-024 Encryption at Rest|IC-031 Asset Inventory|IC-032 Asset Classification|IC-038 Vulnerability Management|IC-051 Endpoint Protection|IC-052 Endpoint Configuration|IC-053 Patch Management|IC-060 Data Backup|IC-061 Backup Testing" \
  "SELECT string_agg(id || ' ' || name, '|' ORDER BY id) FROM internal_control"
expect "every control has a description" "0" \
  "SELECT count(*) FROM internal_control WHERE coalesce(btrim(description), '') = ''"
expect "nine framework rows with versions" "9" \
  "SELECT count(*) FROM control_framework WHERE version_used <> ''"
expect "188 crosswalk rows loaded" "188" "SELECT count(*) FROM control_requirement"
expect "strength column kept as in the CSV" \
  "direct=71|direct-judgment=1|none=2|partial=73|partial-judgment=41" \
  "SELECT string_agg(strength || '=' || n, '|' ORDER BY strength)
     FROM (SELECT strength, count(*) n FROM control_requirement GROUP BY 1) s"
expect "judgment rows are flagged" "42|42" \
  "SELECT count(*) FILTER (WHERE is_judgment) || '|' ||
          count(*) FILTER (WHERE strength LIKE '%-judgment') FROM control_requirement"
expect "every control reaches all eight framework families" "0" \
  "SELECT count(*) FROM internal_control c
    WHERE (SELECT count(DISTINCT CASE WHEN r.framework LIKE 'NIST CSF%' THEN 'NIST CSF'
                                      ELSE r.framework END)
             FROM control_requirement r WHERE r.control_id = c.id) <> 8"
expect "HIPAA encryption at rest row" \
  "Encryption and decryption (Addressable)|direct" \
  "SELECT title || '|' || strength FROM control_requirement
    WHERE control_id = 'IC-024' AND framework = 'HIPAA' AND requirement_id = '164.312(a)(2)(iv)'"
expect "quoted CSV title kept verbatim" \
  'Prevents or detects, and acts on, unauthorized or malicious software; POF "Uses Antivirus and Anti-Malware Software"' \
  "SELECT title FROM control_requirement
    WHERE control_id = 'IC-013' AND framework = 'SOC 2' AND requirement_id = 'CC6.8'"
expect "direct-judgment row (FTC inventory)" "direct-judgment|true" \
  "SELECT strength || '|' || is_judgment FROM control_requirement
    WHERE control_id = 'IC-031' AND framework = 'FTC Safeguards' AND requirement_id = '314.4(c)(2)'"
expect "gap rows are kept as none / N/A" "IC-032 CMMC 2.0 L2|IC-061 CMMC 2.0 L2" \
  "SELECT string_agg(control_id || ' ' || framework, '|' ORDER BY control_id)
     FROM control_requirement WHERE strength = 'none' AND requirement_id = 'N/A'"
expect "every crosswalk row has a source" "0" \
  "SELECT count(*) FROM control_requirement WHERE source IS NULL OR source = ''"
expect "rows keep the CSV order" "1|IC-013|164.308(a)(5)(ii)(B)" \
  "SELECT position || '|' || control_id || '|' || requirement_id FROM control_requirement
    ORDER BY position LIMIT 1"
expect "signal to control map of the five signals" \
  "antivirus_posture:IC-013,IC-051|backup_activity:IC-060,IC-061|device_inventory:IC-031,IC-032|disk_encryption:IC-024,IC-052|patch_sla:IC-038,IC-053" \
  "SELECT string_agg(k, '|' ORDER BY k) FROM (
     SELECT signal_key || ':' || string_agg(control_id, ',' ORDER BY control_id) k
       FROM signal_control GROUP BY signal_key) s"

must_fail "crosswalk strength outside the five values" '23514: .*control_requirement_strength_valid' \
  "INSERT INTO control_requirement (control_id, framework, requirement_id, title, strength, position)
   VALUES ('IC-013', 'HIPAA', '164.999', 'x', 'strong', 999)"
must_fail "crosswalk none row needs requirement id N/A" '23514: .*control_requirement_none_is_gap' \
  "INSERT INTO control_requirement (control_id, framework, requirement_id, title, strength, position)
   VALUES ('IC-013', 'HIPAA', '164.999', 'x', 'none', 999)"
must_fail "crosswalk row for an unknown framework" '23503: .*control_requirement_framework_fkey' \
  "INSERT INTO control_requirement (control_id, framework, requirement_id, title, strength, position)
   VALUES ('IC-013', 'HITRUST', '01.a', 'x', 'direct', 999)"
must_fail "crosswalk row duplicated" '23505: .*control_requirement_pkey' \
  "INSERT INTO control_requirement (control_id, framework, requirement_id, title, strength, position)
   VALUES ('IC-024', 'HIPAA', '164.312(a)(2)(iv)', 'x', 'direct', 999)"
must_fail "internal control id must look like IC-nnn" '23514: .*internal_control_id_valid' \
  "INSERT INTO internal_control (id, name, description) VALUES ('IC-1', 'x', 'y')"
must_fail "signal mapped to an unknown control" '23503: .*signal_control_control_id_fkey' \
  "INSERT INTO signal_control VALUES ('patch_sla', 'IC-999')"

# ---------------------------------------------------------------------------
# Fixture (committed)
# ---------------------------------------------------------------------------

fixture=$(cat <<'EOF'
INSERT INTO organization (id, name, kind) VALUES
  (101, 'Northwind MSP', 'MSP'),
  (102, 'Contoso MSP', 'MSP'),
  (201, 'Acme Dental', 'CUSTOMER'),
  (202, 'Gamma Law', 'CUSTOMER'),
  (203, 'Unpromoted Customer', 'CUSTOMER');
INSERT INTO portal_company (id, msp_org_id, name, converted_to_organization_id) VALUES
  (11, 101, 'Acme Dental', 201),
  (12, 101, 'Beta Bakery', NULL),
  (21, 102, 'Gamma Law', 202);
INSERT INTO integration_credential
  (id, msp_org_id, provider, region, client_id, sealed_secret, key_version, is_active, connected_at)
VALUES
  (1, 101, 'ninjaone', 'US', 'client-a', 'c2VhbGVkIHNlY3JldCBieXRlcw==', 1, true, now());
INSERT INTO integration_org_mapping
  (id, msp_org_id, provider, region, external_org_id, external_name, state, portal_company_id, suggested_company_id)
VALUES
  (1, 101, 'ninjaone', 'US', '7', 'Acme Dental', 'MAPPED', 11, 11),
  (2, 101, 'ninjaone', 'US', '8', 'Beta Bakery', 'PENDING', NULL, 12),
  (3, 102, 'ninjaone', 'EU', '7', 'Gamma Law', 'MAPPED', 21, NULL);
INSERT INTO asset
  (id, msp_org_id, portal_company_id, external_source, external_id, hostname, serial_normalized, mac_addresses)
VALUES
  (1, 101, 11, 'ninjaone', '1001', 'ACME-PC1', 'SN001', ARRAY['aa:bb:cc:dd:ee:01']),
  (2, 101, 11, 'level', 'lv-9', 'acme-pc1', 'SN001', ARRAY['aa:bb:cc:dd:ee:01']),
  (3, 102, 21, 'ninjaone', '1001', 'GAMMA-PC1', NULL, '{}');
INSERT INTO monitoring_signal
  (id, organization_id, source, signal_key, status, metadata, collected_at, expires_at, mapping_id)
VALUES
  (1, 201, 'ninjaone', 'disk_encryption', 'PASS', '{"encrypted_pct": 100}',
   '2026-01-01 00:00Z', '2026-01-08 00:00Z', 1),
  (2, 202, 'ninjaone', 'patch_sla', 'FAIL', '{"outstanding": 9}',
   '2026-01-01 00:00Z', '2026-01-08 00:00Z', 3);
INSERT INTO evidence (organization_id, control_id, signal_id, status, collected_at, summary) VALUES
  (201, 'IC-024', 1, 'PASS', '2026-01-01 00:00Z', 'all volumes encrypted');
INSERT INTO audit_log (organization_id, actor, event, details) VALUES
  (101, 'operator:alice', 'NINJAONE_CONNECTED', '{"region": "US"}');
INSERT INTO psa_ticket
  (id, msp_org_id, portal_company_id, customer_org_id, signal_key, priority, title)
VALUES
  (1, 102, 21, 202, 'patch_sla', 'HIGH', 'Patch SLA failing');
-- The fixture chose its ids; move every id sequence past them.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['organization', 'portal_company', 'integration_credential',
                           'integration_org_mapping', 'asset', 'monitoring_signal',
                           'evidence', 'audit_log', 'psa_ticket'] LOOP
    EXECUTE format('SELECT setval(pg_get_serial_sequence(%L, ''id''),
                                  (SELECT max(id) FROM %I))', t, t);
  END LOOP;
END $$;
EOF
)
if out=$(printf '%s\n' "$fixture" | "${PSQL[@]}" -1 -f - 2>&1); then
  ok "fixture inserted"
else
  bad "fixture inserted" "$out"
  finish
fi

# ---------------------------------------------------------------------------
# organization
# ---------------------------------------------------------------------------

must_fail "organization kind is MSP or CUSTOMER" '23514: .*organization_kind_valid' \
  "INSERT INTO organization (name, kind) VALUES ('x', 'PARTNER')"
must_fail "organization name not blank" '23514: .*organization_name_not_blank' \
  "INSERT INTO organization (name, kind) VALUES ('  ', 'MSP')"
must_fail "organization kind cannot change" '23514: organization.kind is immutable' \
  "UPDATE organization SET kind = 'CUSTOMER' WHERE id = 101"
must_pass "organization rename is allowed" \
  "UPDATE organization SET name = 'Northwind IT' WHERE id = 101"
must_fail "organization with audit history cannot be deleted" '23503: .*audit_log_organization_id_fkey' \
  "INSERT INTO audit_log (organization_id, actor, event) VALUES (203, 'operator:alice', 'COMPLIANCE_ENABLED');
   DELETE FROM organization WHERE id = 203"

# ---------------------------------------------------------------------------
# portal_company
# ---------------------------------------------------------------------------

must_fail "company owner must be an MSP org" '23514: portal_company.msp_org_id must reference a MSP' \
  "INSERT INTO portal_company (msp_org_id, name) VALUES (201, 'x')"
must_fail "company promotion target must be a CUSTOMER org" \
  '23514: portal_company.converted_to_organization_id must reference a CUSTOMER' \
  "UPDATE portal_company SET converted_to_organization_id = 102 WHERE id = 12"
must_fail "one company per compliance tenant" '23505: .*portal_company_converted_key' \
  "UPDATE portal_company SET converted_to_organization_id = 201 WHERE id = 12"
must_fail "company name not blank" '23514: .*portal_company_name_not_blank' \
  "INSERT INTO portal_company (msp_org_id, name) VALUES (101, '')"
must_pass "duplicate company names are allowed (PSA data)" \
  "INSERT INTO portal_company (msp_org_id, name) VALUES (101, ' acme dental '), (101, 'ACME DENTAL')"
must_pass "promotion of a company to a customer org" \
  "UPDATE portal_company SET converted_to_organization_id = 203 WHERE id = 12"
expect "suggestion lookup index on (msp_org_id, lower(btrim(name)))" "1" \
  "SELECT count(*) FROM pg_indexes WHERE indexname = 'portal_company_msp_name_idx'
      AND indexdef LIKE '%(msp_org_id, lower(btrim(name)))%'"

# ---------------------------------------------------------------------------
# integration_credential
# ---------------------------------------------------------------------------

must_fail "active credential needs its sealed secret" '23514: .*integration_credential_active_sealed' \
  "UPDATE integration_credential SET sealed_secret = NULL WHERE id = 1"
must_fail "active credential needs a key version" '23514: .*integration_credential_active_sealed' \
  "INSERT INTO integration_credential (msp_org_id, provider, region, client_id, sealed_secret, is_active, connected_at)
   VALUES (101, 'ninjaone', 'EU', 'c', 'YWJj', true, now())"
must_fail "inactive credential keeps no sealed secret" '23514: .*integration_credential_inactive_zeroed' \
  "UPDATE integration_credential SET is_active = false, disconnected_at = now() WHERE id = 1"
must_fail "one credential per (msp, provider, region)" '23505: .*integration_credential_key' \
  "INSERT INTO integration_credential (msp_org_id, provider, region, client_id, sealed_secret, key_version, connected_at)
   VALUES (101, 'ninjaone', 'US', 'c', 'YWJj', 1, now())"
must_fail "credential belongs to an MSP org" '23514: integration_credential.msp_org_id must reference a MSP' \
  "INSERT INTO integration_credential (msp_org_id, provider, region, client_id, sealed_secret, key_version, connected_at)
   VALUES (201, 'ninjaone', 'US', 'c', 'YWJj', 1, now())"
must_fail "sealed secret is base64" '23514: .*integration_credential_sealed_base64' \
  "UPDATE integration_credential SET sealed_secret = 'plain text secret!' WHERE id = 1"
must_fail "key version is positive" '23514: .*integration_credential_key_version_positive' \
  "UPDATE integration_credential SET key_version = 0 WHERE id = 1"
must_fail "sync summaries are JSON objects" '23514: .*integration_credential_json_objects' \
  "UPDATE integration_credential SET last_asset_sync = '[1,2]' WHERE id = 1"
must_pass "disconnect zeroes the sealed columns; mappings stay" \
  "UPDATE integration_credential
      SET is_active = false, sealed_secret = NULL, key_version = NULL, disconnected_at = now()
    WHERE id = 1;
   DO \$\$ BEGIN
     IF (SELECT count(*) FROM integration_org_mapping WHERE msp_org_id = 101) <> 2 THEN
       RAISE EXCEPTION 'mappings changed';
     END IF;
   END \$\$;
   UPDATE integration_credential
      SET is_active = true, sealed_secret = 'bmV3IHNlY3JldA', key_version = 2,
          connected_at = now(), disconnected_at = NULL
    WHERE id = 1"
must_pass "other region of the same MSP is a second credential" \
  "INSERT INTO integration_credential (msp_org_id, provider, region, client_id, sealed_secret, key_version, connected_at)
   VALUES (101, 'ninjaone', 'EU', 'c', 'YWJj', 1, now())"
expect "index for active credentials by provider" "1" \
  "SELECT count(*) FROM pg_indexes WHERE indexname = 'integration_credential_active_idx'
      AND indexdef LIKE '%(provider, region, msp_org_id)%WHERE is_active%'"

# ---------------------------------------------------------------------------
# integration_org_mapping
# ---------------------------------------------------------------------------

must_fail "MAPPED needs a bound company" '23514: .*integration_org_mapping_mapped_has_company' \
  "UPDATE integration_org_mapping SET state = 'MAPPED' WHERE id = 2"
must_fail "PENDING has no bound company" '23514: .*integration_org_mapping_mapped_has_company' \
  "UPDATE integration_org_mapping SET portal_company_id = 12 WHERE id = 2"
must_fail "IGNORED has no bound company" '23514: .*integration_org_mapping_mapped_has_company' \
  "UPDATE integration_org_mapping SET state = 'IGNORED' WHERE id = 1"
must_fail "bound company belongs to the same MSP" '23503: .*integration_org_mapping_company_same_msp' \
  "UPDATE integration_org_mapping SET state = 'MAPPED', portal_company_id = 21 WHERE id = 2"
must_fail "suggested company belongs to the same MSP" '23503: .*integration_org_mapping_suggested_same_msp' \
  "UPDATE integration_org_mapping SET suggested_company_id = 21 WHERE id = 2"
must_fail "one mapping per (msp, provider, region, external org)" '23505: .*integration_org_mapping_key' \
  "INSERT INTO integration_org_mapping (msp_org_id, provider, region, external_org_id, external_name)
   VALUES (101, 'ninjaone', 'US', '7', 'dup')"
must_fail "mapping state is PENDING, MAPPED or IGNORED" '23514: .*integration_org_mapping_state_valid' \
  "UPDATE integration_org_mapping SET state = 'DONE' WHERE id = 2"
must_fail "mapping belongs to an MSP org" '23514: integration_org_mapping.msp_org_id must reference a MSP' \
  "INSERT INTO integration_org_mapping (msp_org_id, provider, region, external_org_id, external_name)
   VALUES (201, 'ninjaone', 'US', '99', 'x')"
must_fail "company bound by a mapping cannot be deleted" '23503: .*integration_org_mapping_company_same_msp' \
  "DELETE FROM portal_company WHERE id = 11"
must_pass "use existing, then ignore, then vanish" \
  "UPDATE integration_org_mapping SET state = 'MAPPED', portal_company_id = 12 WHERE id = 2;
   UPDATE integration_org_mapping SET state = 'IGNORED', portal_company_id = NULL WHERE id = 2;
   UPDATE integration_org_mapping SET vanished_at = now() WHERE id = 2"
must_pass "same external org id under another MSP or region" \
  "INSERT INTO integration_org_mapping (msp_org_id, provider, region, external_org_id, external_name)
   VALUES (102, 'ninjaone', 'US', '7', 'x'), (101, 'ninjaone', 'EU', '7', 'x')"
must_pass "deleting a merely suggested company clears only the suggestion" \
  "DELETE FROM portal_company WHERE id = 12;
   DO \$\$ BEGIN
     IF (SELECT msp_org_id IS DISTINCT FROM 101 OR suggested_company_id IS NOT NULL
           FROM integration_org_mapping WHERE id = 2) THEN
       RAISE EXCEPTION 'suggestion not cleared correctly';
     END IF;
   END \$\$"
expect "index for MAPPED mappings by (msp, provider, region)" "1" \
  "SELECT count(*) FROM pg_indexes WHERE indexname = 'integration_org_mapping_mapped_idx'
      AND indexdef LIKE '%(msp_org_id, provider, region)%WHERE (state = ''MAPPED''::text)%'"
expect "sweep query: MAPPED mappings of active credentials whose company is promoted" \
  "101|201|1|US|7" \
  "SELECT string_agg(concat_ws('|', c.msp_org_id, p.converted_to_organization_id, m.id, m.region, m.external_org_id), ';')
     FROM integration_credential c
     JOIN integration_org_mapping m
       ON m.msp_org_id = c.msp_org_id AND m.provider = c.provider AND m.region = c.region
      AND m.state = 'MAPPED'
     JOIN portal_company p ON p.id = m.portal_company_id
    WHERE c.is_active AND c.provider = 'ninjaone' AND p.converted_to_organization_id IS NOT NULL"

# ---------------------------------------------------------------------------
# asset
# ---------------------------------------------------------------------------

must_fail "asset company belongs to the same MSP" '23503: .*asset_company_same_msp' \
  "INSERT INTO asset (msp_org_id, portal_company_id, external_source, external_id)
   VALUES (101, 21, 'ninjaone', '5000')"
must_fail "one asset per (msp, source, external id)" '23505: .*asset_key' \
  "INSERT INTO asset (msp_org_id, portal_company_id, external_source, external_id)
   VALUES (101, 11, 'ninjaone', '1001')"
must_fail "RETIRED needs retired_at" '23514: .*asset_retired_consistent' \
  "UPDATE asset SET status = 'RETIRED', retired_reason = 'gone' WHERE id = 1"
must_fail "RETIRED needs a reason" '23514: .*asset_retired_consistent' \
  "UPDATE asset SET status = 'RETIRED', retired_at = now() WHERE id = 1"
must_fail "ACTIVE has no retired_at" '23514: .*asset_retired_consistent' \
  "UPDATE asset SET retired_at = now() WHERE id = 1"
must_fail "asset status is ACTIVE or RETIRED" '23514: .*asset_status_valid' \
  "UPDATE asset SET status = 'DELETED' WHERE id = 1"
must_fail "MAC addresses are lowercase" '23514: .*asset_mac_addresses_normalized' \
  "UPDATE asset SET mac_addresses = ARRAY['AA:BB:CC:DD:EE:01'] WHERE id = 1"
must_fail "MAC addresses use colons" '23514: .*asset_mac_addresses_normalized' \
  "UPDATE asset SET mac_addresses = ARRAY['aa:bb:cc:dd:ee:01', 'aa-bb-cc-dd-ee-02'] WHERE id = 1"
must_fail "MAC address array has no NULL" '23514: .*asset_mac_addresses_normalized' \
  "UPDATE asset SET mac_addresses = ARRAY['aa:bb:cc:dd:ee:01', NULL] WHERE id = 1"
must_fail "normalized serial is never blank" '23514: .*asset_serial_normalized_not_blank' \
  "UPDATE asset SET serial_normalized = '' WHERE id = 1"
must_fail "hostname is never blank" '23514: .*asset_hostname_not_blank' \
  "UPDATE asset SET hostname = ' ' WHERE id = 1"
must_fail "a duplicate is retired" '23514: .*asset_duplicate_retired' \
  "UPDATE asset SET duplicate_of_asset_id = 1 WHERE id = 2"
must_fail "a duplicate points at an asset of the same MSP" '23503: .*asset_duplicate_same_msp' \
  "UPDATE asset SET status = 'RETIRED', retired_at = now(), retired_reason = 'x',
                    duplicate_of_asset_id = 3 WHERE id = 2"
must_fail "an asset is not its own duplicate" '23514: .*asset_duplicate_retired' \
  "UPDATE asset SET status = 'RETIRED', retired_at = now(), retired_reason = 'x',
                    duplicate_of_asset_id = 2 WHERE id = 2"
must_fail "raw summary is a JSON object" '23514: .*asset_raw_summary_object' \
  "UPDATE asset SET raw_summary = '\"text\"' WHERE id = 1"
must_pass "dedup: lower-priority source retired naming the winner, then un-retired" \
  "UPDATE asset SET status = 'RETIRED', retired_at = now(),
                    retired_reason = 'duplicate of ninjaone asset 1001', duplicate_of_asset_id = 1
    WHERE id = 2;
   UPDATE asset SET status = 'ACTIVE', retired_at = NULL, retired_reason = NULL,
                    duplicate_of_asset_id = NULL
    WHERE id = 2"
must_pass "set-based upsert through unnest with ON CONFLICT" \
  "INSERT INTO asset (msp_org_id, portal_company_id, external_source, external_id, hostname, mac_addresses)
   SELECT 101, 11, 'ninjaone', x, 'h' || x, '{}'::text[]
     FROM unnest(ARRAY['1001', '1002', '1003']) AS t(x)
   ON CONFLICT (msp_org_id, external_source, external_id)
   DO UPDATE SET hostname = EXCLUDED.hostname, last_synced_at = now()"
must_pass "same external id in another MSP; NULL and empty MAC lists" \
  "INSERT INTO asset (msp_org_id, portal_company_id, external_source, external_id, mac_addresses)
   VALUES (102, 21, 'level', 'lv-9', NULL), (102, 21, 'intune', 'i-1', '{}')"
must_pass "disconnect retires every ninjaone asset of the MSP" \
  "UPDATE asset SET status = 'RETIRED', retired_at = now(), retired_reason = 'ninjaone disconnected'
    WHERE msp_org_id = 101 AND external_source = 'ninjaone' AND status = 'ACTIVE'"
must_fail "asset company cannot be deleted while assets use it" '23503: .*asset_company_same_msp' \
  "DELETE FROM integration_org_mapping WHERE portal_company_id = 21;
   DELETE FROM psa_ticket WHERE portal_company_id = 21;
   DELETE FROM portal_company WHERE id = 21"
expect "dedup indexes (serial, hostname, GIN MACs, source+status)" "4" \
  "SELECT count(*) FROM pg_indexes WHERE tablename = 'asset' AND (
      indexdef LIKE '%(msp_org_id, portal_company_id, serial_normalized)%'
   OR indexdef LIKE '%(msp_org_id, portal_company_id, lower(hostname))%'
   OR indexdef LIKE '%USING gin (mac_addresses)%'
   OR indexdef LIKE '%(msp_org_id, external_source, status)%')"

# ---------------------------------------------------------------------------
# monitoring_signal and evidence
# ---------------------------------------------------------------------------

must_fail "signals are written on a CUSTOMER org, never the MSP" \
  '23514: monitoring_signal.organization_id must reference a CUSTOMER' \
  "INSERT INTO monitoring_signal (organization_id, source, signal_key, status, expires_at)
   VALUES (101, 'ninjaone', 'patch_sla', 'PASS', now() + interval '7 days')"
must_fail "signal key is one of the five" '23503: .*monitoring_signal_signal_key_fkey' \
  "INSERT INTO monitoring_signal (organization_id, source, signal_key, status, expires_at)
   VALUES (201, 'ninjaone', 'cpu_temperature', 'PASS', now() + interval '7 days')"
must_fail "signal status is PASS, WARNING or FAIL" '23514: .*monitoring_signal_status_valid' \
  "INSERT INTO monitoring_signal (organization_id, source, signal_key, status, expires_at)
   VALUES (201, 'ninjaone', 'patch_sla', 'OK', now() + interval '7 days')"
must_fail "signal metadata is a JSON object" '23514: .*monitoring_signal_metadata_object' \
  "INSERT INTO monitoring_signal (organization_id, source, signal_key, status, metadata, expires_at)
   VALUES (201, 'ninjaone', 'patch_sla', 'PASS', '[\"host-1\"]', now() + interval '7 days')"
must_fail "signal expires after it was collected" '23514: .*monitoring_signal_expiry_after_collection' \
  "INSERT INTO monitoring_signal (organization_id, source, signal_key, status, collected_at, expires_at)
   VALUES (201, 'ninjaone', 'patch_sla', 'PASS', '2026-01-01Z', '2026-01-01Z')"
must_fail "signal needs an expiry" '23502: .*expires_at' \
  "INSERT INTO monitoring_signal (organization_id, source, signal_key, status)
   VALUES (201, 'ninjaone', 'patch_sla', 'PASS')"
must_fail "evidence only for a control the signal maps to" '23503: .*evidence_control_mapped_to_signal' \
  "INSERT INTO evidence (organization_id, control_id, signal_id, status, collected_at)
   VALUES (201, 'IC-013', 1, 'PASS', now())"
must_fail "evidence on the signal's organization" '23503: .*evidence_matches_signal' \
  "INSERT INTO evidence (organization_id, control_id, signal_id, status, collected_at)
   VALUES (202, 'IC-052', 1, 'PASS', now())"
must_fail "evidence carries the signal's status" '23503: .*evidence_matches_signal' \
  "INSERT INTO evidence (organization_id, control_id, signal_id, status, collected_at)
   VALUES (201, 'IC-052', 1, 'FAIL', now())"
must_fail "one evidence row per (signal, control)" '23505: .*evidence_signal_control_key' \
  "INSERT INTO evidence (organization_id, control_id, signal_id, status, collected_at)
   VALUES (201, 'IC-024', 1, 'PASS', now())"
must_fail "evidence for an unknown control" '23503: .*evidence_control_id_fkey' \
  "INSERT INTO evidence (organization_id, control_id, signal_id, status, collected_at)
   VALUES (201, 'IC-999', 1, 'PASS', now())"
must_pass "signal plus one evidence row per mapped control" \
  "WITH s AS (
     INSERT INTO monitoring_signal (organization_id, source, signal_key, status, metadata, expires_at, mapping_id)
     VALUES (201, 'ninjaone', 'antivirus_posture', 'WARNING', '{\"reason\": \"no_data\"}',
             now() + interval '7 days', 1)
     RETURNING id, organization_id, signal_key, status, collected_at)
   INSERT INTO evidence (organization_id, control_id, signal_id, status, collected_at)
   SELECT s.organization_id, sc.control_id, s.id, s.status, s.collected_at
     FROM s JOIN signal_control sc USING (signal_key)"
must_pass "evidence signal_key, status and time default from the signal" \
  "INSERT INTO evidence (organization_id, control_id, signal_id) VALUES (201, 'IC-052', 1);
   DO \$\$ BEGIN
     IF (SELECT status <> 'PASS' OR signal_key <> 'disk_encryption'
                OR collected_at <> '2026-01-01 00:00Z'::timestamptz
           FROM evidence WHERE signal_id = 1 AND control_id = 'IC-052') THEN
       RAISE EXCEPTION 'not filled from the signal';
     END IF;
   END \$\$"
must_pass "deleting a signal removes its evidence" \
  "DELETE FROM monitoring_signal WHERE id = 1;
   DO \$\$ BEGIN
     IF EXISTS (SELECT 1 FROM evidence WHERE signal_id = 1) THEN
       RAISE EXCEPTION 'evidence left behind';
     END IF;
   END \$\$"
expect "latest-signal index (organization_id, signal_key, collected_at DESC)" "1" \
  "SELECT count(*) FROM pg_indexes WHERE indexname = 'monitoring_signal_latest_idx'
      AND indexdef LIKE '%(organization_id, signal_key, collected_at DESC)%'"

# ---------------------------------------------------------------------------
# audit_log
# ---------------------------------------------------------------------------

must_fail "audit log rows cannot be updated" '23001: audit_log is append-only' \
  "UPDATE audit_log SET event = 'TAMPERED'"
must_fail "audit log rows cannot be deleted" '23001: audit_log is append-only' \
  "DELETE FROM audit_log"
must_fail "audit details are a JSON object" '23514: .*audit_log_details_object' \
  "INSERT INTO audit_log (organization_id, actor, event, details) VALUES (101, 'a', 'X', '[]')"
must_fail "audit event names are UPPER_SNAKE" '23514: .*audit_log_event_valid' \
  "INSERT INTO audit_log (organization_id, actor, event) VALUES (101, 'a', 'ninjaone connected')"
must_fail "audit actor is named" '23514: .*audit_log_actor_not_blank' \
  "INSERT INTO audit_log (organization_id, actor, event) VALUES (101, '', 'X')"
must_pass "audit rows on MSP and customer orgs" \
  "INSERT INTO audit_log (organization_id, actor, event, details) VALUES
     (101, 'operator:alice', 'NINJAONE_DISCONNECTED', '{}'),
     (201, 'operator:alice', 'NINJAONE_DISCONNECTED', '{\"signals_kept\": 5}')"

# ---------------------------------------------------------------------------
# psa_ticket
# ---------------------------------------------------------------------------

must_fail "one OPEN ticket per (customer, signal)" '23505: .*psa_ticket_one_open_key' \
  "INSERT INTO psa_ticket (msp_org_id, portal_company_id, customer_org_id, signal_key, priority, title)
   VALUES (102, 21, 202, 'patch_sla', 'MEDIUM', 'again')"
must_fail "RESOLVED needs resolved_at" '23514: .*psa_ticket_resolved_consistent' \
  "UPDATE psa_ticket SET status = 'RESOLVED' WHERE id = 1"
must_fail "OPEN has no resolved_at" '23514: .*psa_ticket_resolved_consistent' \
  "UPDATE psa_ticket SET resolved_at = now() WHERE id = 1"
must_fail "ticket customer is the company's compliance tenant" \
  '23503: .*psa_ticket_customer_is_company_tenant' \
  "INSERT INTO psa_ticket (msp_org_id, portal_company_id, customer_org_id, signal_key, priority, title)
   VALUES (101, 11, 202, 'device_inventory', 'HIGH', 'x')"
must_fail "ticket company belongs to the MSP" '23503: .*psa_ticket_company_same_msp' \
  "INSERT INTO psa_ticket (msp_org_id, portal_company_id, customer_org_id, signal_key, priority, title)
   VALUES (101, 21, 202, 'backup_activity', 'HIGH', 'x')"
must_fail "ticket priority is HIGH or MEDIUM" '23514: .*psa_ticket_priority_valid' \
  "UPDATE psa_ticket SET priority = 'LOW' WHERE id = 1"
must_fail "ticket occurrences are positive" '23514: .*psa_ticket_occurrences_positive' \
  "UPDATE psa_ticket SET occurrences = 0 WHERE id = 1"
must_fail "ticket for an unknown signal" '23503: .*psa_ticket_signal_key_fkey' \
  "INSERT INTO psa_ticket (msp_org_id, portal_company_id, customer_org_id, signal_key, priority, title)
   VALUES (102, 21, 202, 'cpu_temperature', 'HIGH', 'x')"
must_fail "promotion cannot be undone under open tickets" '23503: .*psa_ticket_customer_is_company_tenant' \
  "UPDATE portal_company SET converted_to_organization_id = NULL WHERE id = 21"
must_pass "repeat finding updates the open ticket" \
  "UPDATE psa_ticket SET occurrences = occurrences + 1, last_seen_at = now(), priority = 'MEDIUM'
    WHERE customer_org_id = 202 AND signal_key = 'patch_sla' AND status = 'OPEN'"
must_pass "PASS resolves it; a later finding opens a new ticket" \
  "UPDATE psa_ticket SET status = 'RESOLVED', resolved_at = now(), resolution_note = 'patch_sla PASS'
    WHERE id = 1;
   INSERT INTO psa_ticket (msp_org_id, portal_company_id, customer_org_id, signal_key, priority, title)
   VALUES (102, 21, 202, 'patch_sla', 'HIGH', 'Patch SLA failing again')"
must_pass "another signal of the same customer gets its own ticket" \
  "INSERT INTO psa_ticket (msp_org_id, portal_company_id, customer_org_id, signal_key, priority, title)
   VALUES (102, 21, 202, 'backup_activity', 'MEDIUM', 'Backups failing')"

# ---------------------------------------------------------------------------
# 1005: ticket kind, asset sync runs and when a sync last saw an asset
# ---------------------------------------------------------------------------

expect "a ticket is a FINDING unless said otherwise" "FINDING" \
  "SELECT kind FROM psa_ticket WHERE id = 1"
must_fail "ticket kind is FINDING or NO_DATA" '23514: .*psa_ticket_kind_valid' \
  "UPDATE psa_ticket SET kind = 'MISSING' WHERE id = 1"
must_pass "a missing-data ticket with its description" \
  "INSERT INTO psa_ticket (msp_org_id, portal_company_id, customer_org_id, signal_key, priority,
                           kind, title, description)
   VALUES (102, 21, 202, 'antivirus_posture', 'MEDIUM', 'NO_DATA',
           'NinjaOne returned no antivirus data for 5 devices', 'Missing data.')"
must_fail "a sync run's company belongs to its MSP" '23503: .*asset_sync_run_company_same_msp' \
  "INSERT INTO asset_sync_run (msp_org_id, portal_company_id, external_source, synced_at, complete,
                               seen, source_priority)
   VALUES (101, 21, 'ninjaone', now(), true, 1, '{ninjaone}')"
must_fail "a sync run saw a number of devices" '23514: .*asset_sync_run_seen_not_negative' \
  "INSERT INTO asset_sync_run (msp_org_id, portal_company_id, external_source, synced_at, complete,
                               seen, source_priority)
   VALUES (101, 11, 'ninjaone', now(), true, -1, '{ninjaone}')"
must_pass "an MSP ranks its sources" \
  "INSERT INTO msp_source_priority (msp_org_id, sources) VALUES (101, '{intune,ninjaone}')"
must_fail "a source priority names sources" '23514: .*msp_source_priority_sources_not_empty' \
  "INSERT INTO msp_source_priority (msp_org_id, sources) VALUES (102, '{}')"
must_fail "a source priority names each source once" '23514: .*msp_source_priority_sources_distinct' \
  "INSERT INTO msp_source_priority (msp_org_id, sources) VALUES (102, '{level,level}')"
must_fail "a source priority holds source names" '23514: .*msp_source_priority_sources_valid' \
  "INSERT INTO msp_source_priority (msp_org_id, sources) VALUES (102, '{Level}')"
must_fail "a source priority belongs to an MSP org" '23514: msp_source_priority.msp_org_id must reference a MSP' \
  "INSERT INTO msp_source_priority (msp_org_id, sources) VALUES (201, '{level}')"
last_seen_sql=$(cat <<'SQL'
INSERT INTO asset (msp_org_id, portal_company_id, external_source, external_id,
                   first_synced_at, last_synced_at)
VALUES (101, 11, 'level', 'seen-live', '2029-01-01 12:00+00', '2029-01-01 12:00+00'),
       (101, 11, 'level', 'seen-retired', '2029-01-01 12:00+00', '2029-01-01 12:00+00'),
       (101, 11, 'level', 'written-late', '2029-01-01 12:00+00', '2029-10-01 12:00+00');
UPDATE asset SET status = 'RETIRED', retired_at = '2029-06-01 12:00+00', retired_reason = 'not seen'
 WHERE external_id = 'seen-retired';
INSERT INTO asset_sync_run (msp_org_id, portal_company_id, external_source, synced_at, complete,
                            seen, source_priority)
VALUES (101, 11, 'level', '2029-03-01 12:00+00', true, 3, '{ninjaone,level}'),
       (101, 11, 'level', '2029-09-01 12:00+00', true, 2, '{ninjaone,level}'),
       (101, 11, 'level', '2029-12-01 12:00+00', false, 1, '{ninjaone,level}'),
       (101, 11, 'ninjaone', '2029-11-01 12:00+00', true, 9, '{ninjaone,level}');
DO $do$
DECLARE got text;
BEGIN
  SELECT string_agg(a.external_id || '=' ||
                    to_char(l.last_synced_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), ','
                    ORDER BY a.external_id)
    INTO got
    FROM asset_last_seen l JOIN asset a ON a.id = l.asset_id
   WHERE a.external_source = 'level' AND a.external_id IN ('seen-live', 'seen-retired', 'written-late');
  IF got IS DISTINCT FROM 'seen-live=2029-09-01,seen-retired=2029-03-01,written-late=2029-10-01' THEN
    RAISE EXCEPTION 'asset_last_seen: %', got;
  END IF;
END
$do$
SQL
)
must_pass "last seen: newest complete run of its company and source (before retirement), or its own write" \
  "$last_seen_sql"

# ---------------------------------------------------------------------------
# Idempotency and the generator
# ---------------------------------------------------------------------------

before=$("${PSQL[@]}" -At -c "SELECT (SELECT count(*) FROM control_requirement) || '/' ||
  (SELECT count(*) FROM internal_control) || '/' || (SELECT count(*) FROM signal_control) || '/' ||
  (SELECT count(*) FROM organization) || '/' || (SELECT count(*) FROM integration_org_mapping)" 2>&1)
apply_all "re-applying every migration succeeds"
expect "re-applying changes nothing" "$before" \
  "SELECT (SELECT count(*) FROM control_requirement) || '/' ||
  (SELECT count(*) FROM internal_control) || '/' || (SELECT count(*) FROM signal_control) || '/' ||
  (SELECT count(*) FROM organization) || '/' || (SELECT count(*) FROM integration_org_mapping)"

if [ -n "${CROSSWALK:-}" ]; then
  gen_out=$(mktemp)
  if "$mig/gen-control-catalog.sh" "$CROSSWALK" "$gen_out" 2>/dev/null \
     && cmp -s "$gen_out" "$mig/1002_control_catalog.sql"; then
    ok "gen-control-catalog.sh reproduces 1002_control_catalog.sql"
  else
    bad "gen-control-catalog.sh reproduces 1002_control_catalog.sql" \
        "$(diff "$mig/1002_control_catalog.sql" "$gen_out" | head -20)"
  fi
  rm -f "$gen_out"
fi

finish
