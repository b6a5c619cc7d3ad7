-- 1001_platform.sql: platform tables the device-source library and its
-- plugins read and write (organizations, companies, credentials, org
-- mappings, assets, signals, evidence, control catalog, audit log, tickets).
--
-- Applied once, inside one transaction, by `regentra-runner migrate`.
-- Written to be idempotent anyway (IF NOT EXISTS / OR REPLACE), so applying it
-- twice is a no-op. Every object is schema-qualified so the caller's
-- search_path never decides where a table lands. See README.md for the
-- invariants each constraint enforces.

-- ---------------------------------------------------------------------------
-- Shared trigger functions
-- ---------------------------------------------------------------------------

-- Rejects a row whose organization column (TG_ARGV[0]) points at an
-- organization of another kind than TG_ARGV[1]. A missing organization is left
-- to the foreign key. organization.kind is immutable (see below), so a check at
-- write time stays true.
CREATE OR REPLACE FUNCTION public.require_organization_kind()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_column text := TG_ARGV[0];
  v_want   text := TG_ARGV[1];
  v_id     bigint;
  v_kind   text;
BEGIN
  v_id := (to_jsonb(NEW) ->> v_column)::bigint;
  IF v_id IS NULL THEN
    RETURN NEW;
  END IF;
  SELECT o.kind INTO v_kind FROM public.organization o WHERE o.id = v_id;
  IF v_kind IS NOT NULL AND v_kind <> v_want THEN
    RAISE EXCEPTION '%.% must reference a % organization; organization % is %',
                    TG_TABLE_NAME, v_column, v_want, v_id, v_kind
      USING ERRCODE = 'check_violation',
            CONSTRAINT = TG_TABLE_NAME || '_' || v_column || '_kind',
            TABLE = TG_TABLE_NAME, COLUMN = v_column;
  END IF;
  RETURN NEW;
END;
$$;

-- ---------------------------------------------------------------------------
-- organization: MSP tenants and customer (compliance) tenants
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.organization (
  id         bigserial PRIMARY KEY,
  name       text        NOT NULL,
  kind       text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT organization_name_not_blank CHECK (btrim(name) <> ''),
  CONSTRAINT organization_kind_valid CHECK (kind IN ('MSP', 'CUSTOMER'))
);

CREATE OR REPLACE FUNCTION public.organization_kind_immutable()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  IF NEW.kind IS DISTINCT FROM OLD.kind THEN
    RAISE EXCEPTION 'organization.kind is immutable (organization %: % -> %)',
                    OLD.id, OLD.kind, NEW.kind
      USING ERRCODE = 'check_violation',
            CONSTRAINT = 'organization_kind_immutable',
            TABLE = 'organization', COLUMN = 'kind';
  END IF;
  RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER organization_kind_immutable
  BEFORE UPDATE OF kind ON public.organization
  FOR EACH ROW EXECUTE FUNCTION public.organization_kind_immutable();

-- ---------------------------------------------------------------------------
-- portal_company: an MSP's PSA company; promoted to a compliance tenant by
-- setting converted_to_organization_id
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.portal_company (
  id                           bigserial PRIMARY KEY,
  msp_org_id                   bigint      NOT NULL
                               REFERENCES public.organization (id),
  name                         text        NOT NULL,
  converted_to_organization_id bigint
                               REFERENCES public.organization (id),
  created_at                   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT portal_company_name_not_blank CHECK (btrim(name) <> ''),
  -- Targets of same-MSP / same-customer composite foreign keys.
  CONSTRAINT portal_company_id_msp_key UNIQUE (id, msp_org_id),
  CONSTRAINT portal_company_id_customer_key
    UNIQUE (id, converted_to_organization_id)
);

-- Names are not unique (PSA data holds duplicates); this serves the
-- "exact name after trim, case-folded" suggestion and create-new reuse.
CREATE INDEX IF NOT EXISTS portal_company_msp_name_idx
  ON public.portal_company (msp_org_id, lower(btrim(name)));

-- A compliance tenant is the promotion of exactly one company, so one
-- customer's evidence can never be fed by another MSP's company.
CREATE UNIQUE INDEX IF NOT EXISTS portal_company_converted_key
  ON public.portal_company (converted_to_organization_id)
  WHERE converted_to_organization_id IS NOT NULL;

CREATE OR REPLACE TRIGGER portal_company_msp_kind
  BEFORE INSERT OR UPDATE OF msp_org_id ON public.portal_company
  FOR EACH ROW EXECUTE FUNCTION public.require_organization_kind('msp_org_id', 'MSP');

CREATE OR REPLACE TRIGGER portal_company_converted_kind
  BEFORE INSERT OR UPDATE OF converted_to_organization_id ON public.portal_company
  FOR EACH ROW EXECUTE FUNCTION
    public.require_organization_kind('converted_to_organization_id', 'CUSTOMER');

-- ---------------------------------------------------------------------------
-- integration_credential: one per (MSP org, provider, region)
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.integration_credential (
  id                       bigserial PRIMARY KEY,
  msp_org_id               bigint      NOT NULL
                           REFERENCES public.organization (id),
  provider                 text        NOT NULL,
  region                   text        NOT NULL,
  client_id                text,
  sealed_secret            text,
  key_version              integer,
  is_active                boolean     NOT NULL DEFAULT true,
  connected_at             timestamptz,
  disconnected_at          timestamptz,
  first_evidence_synced_at timestamptz,
  last_discovery_at        timestamptz,
  last_discovery           jsonb,
  last_asset_sync_at       timestamptz,
  last_asset_sync          jsonb,
  last_evidence_sweep_at   timestamptz,
  last_evidence_sweep      jsonb,
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT integration_credential_key UNIQUE (msp_org_id, provider, region),
  CONSTRAINT integration_credential_provider_valid
    CHECK (provider ~ '^[a-z0-9][a-z0-9_.-]*$'),
  CONSTRAINT integration_credential_region_valid
    CHECK (region ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
  -- Active: everything needed to call the provider is present.
  CONSTRAINT integration_credential_active_sealed CHECK (
    NOT is_active OR (client_id IS NOT NULL AND btrim(client_id) <> ''
                      AND sealed_secret IS NOT NULL
                      AND key_version IS NOT NULL
                      AND connected_at IS NOT NULL)),
  -- Inactive (disconnected): the sealed columns are zeroed.
  CONSTRAINT integration_credential_inactive_zeroed CHECK (
    is_active OR (sealed_secret IS NULL AND key_version IS NULL)),
  CONSTRAINT integration_credential_sealed_base64 CHECK (
    sealed_secret IS NULL OR sealed_secret ~ '^(v[0-9]+:)?[A-Za-z0-9+/_-]+={0,2}$'),
  CONSTRAINT integration_credential_key_version_positive CHECK (
    key_version IS NULL OR key_version >= 1),
  CONSTRAINT integration_credential_json_objects CHECK (
    (last_discovery IS NULL OR jsonb_typeof(last_discovery) = 'object') AND
    (last_asset_sync IS NULL OR jsonb_typeof(last_asset_sync) = 'object') AND
    (last_evidence_sweep IS NULL OR jsonb_typeof(last_evidence_sweep) = 'object'))
);

-- Sweeps list the active credentials of a provider.
CREATE INDEX IF NOT EXISTS integration_credential_active_idx
  ON public.integration_credential (provider, region, msp_org_id)
  WHERE is_active;

CREATE OR REPLACE TRIGGER integration_credential_msp_kind
  BEFORE INSERT OR UPDATE OF msp_org_id ON public.integration_credential
  FOR EACH ROW EXECUTE FUNCTION public.require_organization_kind('msp_org_id', 'MSP');

-- ---------------------------------------------------------------------------
-- integration_org_mapping: a provider-side organization and what the MSP
-- decided about it. Keyed without the credential, so it survives
-- disconnect/reconnect. Never deleted: vanished orgs get vanished_at.
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.integration_org_mapping (
  id                   bigserial PRIMARY KEY,
  msp_org_id           bigint      NOT NULL
                       REFERENCES public.organization (id),
  provider             text        NOT NULL,
  region               text        NOT NULL,
  external_org_id      text        NOT NULL,
  external_name        text        NOT NULL,
  state                text        NOT NULL DEFAULT 'PENDING',
  portal_company_id    bigint,
  suggested_company_id bigint,
  vanished_at          timestamptz,
  first_seen_at        timestamptz NOT NULL DEFAULT now(),
  last_seen_at         timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT integration_org_mapping_key
    UNIQUE (msp_org_id, provider, region, external_org_id),
  CONSTRAINT integration_org_mapping_provider_valid
    CHECK (provider ~ '^[a-z0-9][a-z0-9_.-]*$'),
  CONSTRAINT integration_org_mapping_region_valid
    CHECK (region ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
  CONSTRAINT integration_org_mapping_external_id_not_blank
    CHECK (btrim(external_org_id) <> ''),
  CONSTRAINT integration_org_mapping_state_valid
    CHECK (state IN ('PENDING', 'MAPPED', 'IGNORED')),
  -- Bound company present exactly when MAPPED.
  CONSTRAINT integration_org_mapping_mapped_has_company
    CHECK ((state = 'MAPPED') = (portal_company_id IS NOT NULL)),
  CONSTRAINT integration_org_mapping_seen_order
    CHECK (last_seen_at >= first_seen_at),
  -- Bound and suggested companies belong to the same MSP as the mapping.
  CONSTRAINT integration_org_mapping_company_same_msp
    FOREIGN KEY (portal_company_id, msp_org_id)
    REFERENCES public.portal_company (id, msp_org_id),
  CONSTRAINT integration_org_mapping_suggested_same_msp
    FOREIGN KEY (suggested_company_id, msp_org_id)
    REFERENCES public.portal_company (id, msp_org_id)
    ON DELETE SET NULL (suggested_company_id)
);

-- Asset sync and the evidence sweep walk the MAPPED mappings of a credential.
CREATE INDEX IF NOT EXISTS integration_org_mapping_mapped_idx
  ON public.integration_org_mapping (msp_org_id, provider, region)
  WHERE state = 'MAPPED';

-- Joins mapping -> portal_company (converted_to_organization_id), and lookups
-- of the mappings bound to one company.
CREATE INDEX IF NOT EXISTS integration_org_mapping_company_idx
  ON public.integration_org_mapping (portal_company_id)
  WHERE portal_company_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS integration_org_mapping_suggested_idx
  ON public.integration_org_mapping (suggested_company_id)
  WHERE suggested_company_id IS NOT NULL;

CREATE OR REPLACE TRIGGER integration_org_mapping_msp_kind
  BEFORE INSERT OR UPDATE OF msp_org_id ON public.integration_org_mapping
  FOR EACH ROW EXECUTE FUNCTION public.require_organization_kind('msp_org_id', 'MSP');

-- ---------------------------------------------------------------------------
-- asset: normalized devices per (MSP org, company, source). Retired, never
-- deleted. msp_org_id is an MSP through the same-MSP company foreign key.
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.asset (
  id                    bigserial PRIMARY KEY,
  msp_org_id            bigint      NOT NULL,
  portal_company_id     bigint      NOT NULL,
  external_source       text        NOT NULL,
  external_id           text        NOT NULL,
  name                  text,
  hostname              text,
  serial_number         text,
  serial_normalized     text,
  mac_addresses         text[],
  os_name               text,
  device_class          text,
  manufacturer          text,
  model                 text,
  last_seen_at          timestamptz,
  status                text        NOT NULL DEFAULT 'ACTIVE',
  retired_reason        text,
  retired_at            timestamptz,
  duplicate_of_asset_id bigint,
  first_synced_at       timestamptz NOT NULL DEFAULT now(),
  last_synced_at        timestamptz NOT NULL DEFAULT now(),
  raw_summary           jsonb,
  CONSTRAINT asset_key UNIQUE (msp_org_id, external_source, external_id),
  CONSTRAINT asset_id_msp_key UNIQUE (id, msp_org_id),
  CONSTRAINT asset_company_same_msp
    FOREIGN KEY (portal_company_id, msp_org_id)
    REFERENCES public.portal_company (id, msp_org_id),
  CONSTRAINT asset_duplicate_same_msp
    FOREIGN KEY (duplicate_of_asset_id, msp_org_id)
    REFERENCES public.asset (id, msp_org_id)
    ON DELETE SET NULL (duplicate_of_asset_id),
  CONSTRAINT asset_external_source_valid
    CHECK (external_source ~ '^[a-z0-9][a-z0-9_.-]*$'),
  CONSTRAINT asset_external_id_not_blank CHECK (btrim(external_id) <> ''),
  CONSTRAINT asset_status_valid CHECK (status IN ('ACTIVE', 'RETIRED')),
  -- RETIRED exactly when retired_at is set; a retired row says why.
  CONSTRAINT asset_retired_consistent CHECK (
    (status = 'RETIRED') = (retired_at IS NOT NULL)
    AND (status = 'RETIRED') = (retired_reason IS NOT NULL)),
  -- A row marked as someone's duplicate is retired, and not its own winner.
  CONSTRAINT asset_duplicate_retired CHECK (
    duplicate_of_asset_id IS NULL
    OR (status = 'RETIRED' AND duplicate_of_asset_id <> id)),
  -- Dedup keys: never blank, MACs in lowercase colon form.
  CONSTRAINT asset_serial_normalized_not_blank
    CHECK (serial_normalized IS NULL OR btrim(serial_normalized) <> ''),
  CONSTRAINT asset_hostname_not_blank
    CHECK (hostname IS NULL OR btrim(hostname) <> ''),
  CONSTRAINT asset_mac_addresses_normalized CHECK (
    mac_addresses IS NULL
    OR cardinality(mac_addresses) = 0
    OR (array_position(mac_addresses, NULL) IS NULL
        AND array_to_string(mac_addresses, ',')
            ~ '^[0-9a-f]{2}(:[0-9a-f]{2}){5}(,[0-9a-f]{2}(:[0-9a-f]{2}){5})*$')),
  CONSTRAINT asset_raw_summary_object
    CHECK (raw_summary IS NULL OR jsonb_typeof(raw_summary) = 'object'),
  CONSTRAINT asset_synced_order CHECK (last_synced_at >= first_synced_at)
);

-- Dedup lookups within a company: serial, then MAC, then hostname.
CREATE INDEX IF NOT EXISTS asset_serial_idx
  ON public.asset (msp_org_id, portal_company_id, serial_normalized)
  WHERE serial_normalized IS NOT NULL;
CREATE INDEX IF NOT EXISTS asset_mac_addresses_idx
  ON public.asset USING gin (mac_addresses);
CREATE INDEX IF NOT EXISTS asset_hostname_idx
  ON public.asset (msp_org_id, portal_company_id, lower(hostname))
  WHERE hostname IS NOT NULL;
-- Disconnect retires every asset of a source in the MSP org.
CREATE INDEX IF NOT EXISTS asset_source_status_idx
  ON public.asset (msp_org_id, external_source, status);
-- Retirement after a complete pull: the rows of one (company, source).
CREATE INDEX IF NOT EXISTS asset_company_source_idx
  ON public.asset (portal_company_id, external_source, status);
CREATE INDEX IF NOT EXISTS asset_duplicate_of_idx
  ON public.asset (duplicate_of_asset_id)
  WHERE duplicate_of_asset_id IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Control catalog: internal controls, frameworks, crosswalk (data: 1002)
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.internal_control (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  description text NOT NULL,
  scf_anchors text,
  CONSTRAINT internal_control_id_valid CHECK (id ~ '^IC-[0-9]{3}$'),
  CONSTRAINT internal_control_name_key UNIQUE (name),
  CONSTRAINT internal_control_name_not_blank CHECK (btrim(name) <> ''),
  CONSTRAINT internal_control_description_not_blank
    CHECK (btrim(description) <> '')
);

-- One row per framework string used by the crosswalk ("NIST CSF 2.0",
-- "ISO 27001:2022", ...), with the version the ids were checked against.
CREATE TABLE IF NOT EXISTS public.control_framework (
  framework     text PRIMARY KEY,
  version_used  text    NOT NULL,
  title_meaning text    NOT NULL,
  position      integer NOT NULL,
  CONSTRAINT control_framework_not_blank CHECK (btrim(framework) <> '')
);

CREATE TABLE IF NOT EXISTS public.control_requirement (
  control_id     text    NOT NULL
                 REFERENCES public.internal_control (id),
  framework      text    NOT NULL
                 REFERENCES public.control_framework (framework),
  requirement_id text    NOT NULL,
  title          text    NOT NULL,
  strength       text    NOT NULL,
  -- Derived from strength: rows that rest only on reading the requirement
  -- text, to be shown as such.
  is_judgment    boolean GENERATED ALWAYS AS (strength LIKE '%-judgment') STORED,
  source         text,
  position       integer NOT NULL,
  PRIMARY KEY (control_id, framework, requirement_id),
  CONSTRAINT control_requirement_strength_valid CHECK (strength IN
    ('direct', 'partial', 'direct-judgment', 'partial-judgment', 'none')),
  -- A "none" row records a gap: it carries the id N/A and nothing else does.
  CONSTRAINT control_requirement_none_is_gap
    CHECK ((strength = 'none') = (requirement_id = 'N/A')),
  CONSTRAINT control_requirement_title_not_blank CHECK (btrim(title) <> '')
);

CREATE INDEX IF NOT EXISTS control_requirement_framework_idx
  ON public.control_requirement (framework, requirement_id);

-- ---------------------------------------------------------------------------
-- Signals: the fixed catalog of signal keys and the controls each evidences
-- (data: 1003)
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.signal_definition (
  signal_key  text PRIMARY KEY,
  name        text NOT NULL,
  description text NOT NULL,
  CONSTRAINT signal_definition_key_valid CHECK (signal_key ~ '^[a-z][a-z0-9_]*$')
);

CREATE TABLE IF NOT EXISTS public.signal_control (
  signal_key text NOT NULL REFERENCES public.signal_definition (signal_key),
  control_id text NOT NULL REFERENCES public.internal_control (id),
  PRIMARY KEY (signal_key, control_id)
);

-- ---------------------------------------------------------------------------
-- monitoring_signal: one measured signal on a customer compliance org
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.monitoring_signal (
  id              bigserial PRIMARY KEY,
  organization_id bigint      NOT NULL
                  REFERENCES public.organization (id),
  source          text        NOT NULL,
  signal_key      text        NOT NULL
                  REFERENCES public.signal_definition (signal_key),
  status          text        NOT NULL,
  metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
  collected_at    timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  mapping_id      bigint
                  REFERENCES public.integration_org_mapping (id) ON DELETE SET NULL,
  -- Target of evidence's composite foreign key (same org, key and status).
  CONSTRAINT monitoring_signal_evidence_key
    UNIQUE (id, organization_id, signal_key, status),
  CONSTRAINT monitoring_signal_source_valid
    CHECK (source ~ '^[a-z0-9][a-z0-9_.-]*$'),
  CONSTRAINT monitoring_signal_status_valid
    CHECK (status IN ('PASS', 'WARNING', 'FAIL')),
  CONSTRAINT monitoring_signal_metadata_object
    CHECK (jsonb_typeof(metadata) = 'object'),
  CONSTRAINT monitoring_signal_expiry_after_collection
    CHECK (expires_at > collected_at)
);

CREATE INDEX IF NOT EXISTS monitoring_signal_latest_idx
  ON public.monitoring_signal (organization_id, signal_key, collected_at DESC);
CREATE INDEX IF NOT EXISTS monitoring_signal_mapping_idx
  ON public.monitoring_signal (mapping_id)
  WHERE mapping_id IS NOT NULL;

CREATE OR REPLACE TRIGGER monitoring_signal_customer_kind
  BEFORE INSERT OR UPDATE OF organization_id ON public.monitoring_signal
  FOR EACH ROW EXECUTE FUNCTION
    public.require_organization_kind('organization_id', 'CUSTOMER');

-- ---------------------------------------------------------------------------
-- evidence: one row per (signal, mapped internal control). The composite
-- foreign keys keep it on the signal's organization, with the signal's status,
-- and only for a control that signal maps to.
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.evidence (
  id              bigserial PRIMARY KEY,
  organization_id bigint      NOT NULL,
  control_id      text        NOT NULL
                  REFERENCES public.internal_control (id),
  signal_id       bigint      NOT NULL,
  signal_key      text        NOT NULL,
  status          text        NOT NULL,
  collected_at    timestamptz NOT NULL,
  summary         text,
  CONSTRAINT evidence_signal_control_key UNIQUE (signal_id, control_id),
  CONSTRAINT evidence_status_valid CHECK (status IN ('PASS', 'WARNING', 'FAIL')),
  CONSTRAINT evidence_matches_signal
    FOREIGN KEY (signal_id, organization_id, signal_key, status)
    REFERENCES public.monitoring_signal (id, organization_id, signal_key, status)
    ON DELETE CASCADE,
  CONSTRAINT evidence_control_mapped_to_signal
    FOREIGN KEY (signal_key, control_id)
    REFERENCES public.signal_control (signal_key, control_id)
);

CREATE INDEX IF NOT EXISTS evidence_org_control_idx
  ON public.evidence (organization_id, control_id, collected_at DESC);

-- signal_key, status and collected_at may be omitted on insert: they are
-- copied from the signal (the foreign key then checks any value given).
CREATE OR REPLACE FUNCTION public.evidence_fill_from_signal()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  v_key       text;
  v_status    text;
  v_collected timestamptz;
BEGIN
  IF NEW.signal_key IS NULL OR NEW.status IS NULL OR NEW.collected_at IS NULL THEN
    SELECT s.signal_key, s.status, s.collected_at
      INTO v_key, v_status, v_collected
      FROM public.monitoring_signal s
     WHERE s.id = NEW.signal_id;
    NEW.signal_key   := COALESCE(NEW.signal_key, v_key);
    NEW.status       := COALESCE(NEW.status, v_status);
    NEW.collected_at := COALESCE(NEW.collected_at, v_collected);
  END IF;
  RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER evidence_fill_from_signal
  BEFORE INSERT OR UPDATE ON public.evidence
  FOR EACH ROW EXECUTE FUNCTION public.evidence_fill_from_signal();

-- ---------------------------------------------------------------------------
-- audit_log: append-only trail on any organization
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.audit_log (
  id              bigserial PRIMARY KEY,
  organization_id bigint      NOT NULL
                  REFERENCES public.organization (id),
  actor           text        NOT NULL,
  event           text        NOT NULL,
  details         jsonb       NOT NULL DEFAULT '{}'::jsonb,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT audit_log_actor_not_blank CHECK (btrim(actor) <> ''),
  CONSTRAINT audit_log_event_valid CHECK (event ~ '^[A-Z][A-Z0-9_]*$'),
  CONSTRAINT audit_log_details_object CHECK (jsonb_typeof(details) = 'object')
);

CREATE INDEX IF NOT EXISTS audit_log_org_created_idx
  ON public.audit_log (organization_id, created_at DESC);

CREATE OR REPLACE FUNCTION public.audit_log_append_only()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
    USING ERRCODE = 'restrict_violation',
          CONSTRAINT = 'audit_log_append_only',
          TABLE = 'audit_log';
END;
$$;

CREATE OR REPLACE TRIGGER audit_log_append_only
  BEFORE UPDATE OR DELETE ON public.audit_log
  FOR EACH ROW EXECUTE FUNCTION public.audit_log_append_only();

-- ---------------------------------------------------------------------------
-- psa_ticket: findings routed to the MSP's PSA queue. The company belongs to
-- the MSP, and the customer is that company's compliance tenant (both by
-- composite foreign key). One OPEN ticket per (customer, signal).
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.psa_ticket (
  id                bigserial PRIMARY KEY,
  msp_org_id        bigint      NOT NULL,
  portal_company_id bigint      NOT NULL,
  customer_org_id   bigint      NOT NULL,
  signal_key        text        NOT NULL
                    REFERENCES public.signal_definition (signal_key),
  priority          text        NOT NULL,
  status            text        NOT NULL DEFAULT 'OPEN',
  title             text        NOT NULL,
  occurrences       integer     NOT NULL DEFAULT 1,
  first_seen_at     timestamptz NOT NULL DEFAULT now(),
  last_seen_at      timestamptz NOT NULL DEFAULT now(),
  resolved_at       timestamptz,
  resolution_note   text,
  CONSTRAINT psa_ticket_company_same_msp
    FOREIGN KEY (portal_company_id, msp_org_id)
    REFERENCES public.portal_company (id, msp_org_id),
  CONSTRAINT psa_ticket_customer_is_company_tenant
    FOREIGN KEY (portal_company_id, customer_org_id)
    REFERENCES public.portal_company (id, converted_to_organization_id),
  CONSTRAINT psa_ticket_priority_valid CHECK (priority IN ('HIGH', 'MEDIUM')),
  CONSTRAINT psa_ticket_status_valid CHECK (status IN ('OPEN', 'RESOLVED')),
  CONSTRAINT psa_ticket_resolved_consistent
    CHECK ((status = 'RESOLVED') = (resolved_at IS NOT NULL)),
  CONSTRAINT psa_ticket_title_not_blank CHECK (btrim(title) <> ''),
  CONSTRAINT psa_ticket_occurrences_positive CHECK (occurrences >= 1),
  CONSTRAINT psa_ticket_seen_order CHECK (last_seen_at >= first_seen_at),
  CONSTRAINT psa_ticket_resolved_after_first_seen
    CHECK (resolved_at IS NULL OR resolved_at >= first_seen_at)
);

CREATE UNIQUE INDEX IF NOT EXISTS psa_ticket_one_open_key
  ON public.psa_ticket (customer_org_id, signal_key)
  WHERE status = 'OPEN';
CREATE INDEX IF NOT EXISTS psa_ticket_queue_idx
  ON public.psa_ticket (msp_org_id, status, last_seen_at DESC);
CREATE INDEX IF NOT EXISTS psa_ticket_company_idx
  ON public.psa_ticket (portal_company_id);
