-- 1005_sync_runs_ticket_kind.sql: asset sync runs (last seen without
-- rewriting unchanged rows) and the kind of a PSA ticket (a failing
-- measurement, or data the source did not send).

-- ---------------------------------------------------------------------------
-- asset_sync_run: one row per asset sync of (MSP, company, source). An asset
-- sync writes only the rows whose content changed; an unchanged row keeps the
-- last_synced_at of its last write. A complete pull retires every live row of
-- its (company, source) that it did not contain, so every row still live
-- after a complete run was seen by it: the row's last sighting is the newest
-- complete run of its (company, source), which asset_last_seen computes.
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.asset_sync_run (
  id                bigserial PRIMARY KEY,
  msp_org_id        bigint      NOT NULL,
  portal_company_id bigint      NOT NULL,
  external_source   text        NOT NULL,
  synced_at         timestamptz NOT NULL,
  complete          boolean     NOT NULL,
  seen              integer     NOT NULL,
  -- The source ranking dedup used: a later pull that changes nothing and
  -- ranks the same way leaves every dedup verdict as it was.
  source_priority   text[]      NOT NULL,
  CONSTRAINT asset_sync_run_company_same_msp
    FOREIGN KEY (portal_company_id, msp_org_id)
    REFERENCES public.portal_company (id, msp_org_id),
  CONSTRAINT asset_sync_run_source_valid
    CHECK (external_source ~ '^[a-z0-9][a-z0-9_.-]*$'),
  CONSTRAINT asset_sync_run_seen_not_negative CHECK (seen >= 0)
);

CREATE INDEX IF NOT EXISTS asset_sync_run_company_idx
  ON public.asset_sync_run (portal_company_id, id DESC);
CREATE INDEX IF NOT EXISTS asset_sync_run_latest_idx
  ON public.asset_sync_run (portal_company_id, external_source, synced_at DESC)
  WHERE complete;

-- When a sync last saw each asset. A live row (ACTIVE, or retired only as a
-- duplicate) was seen by every complete run of its (company, source) since
-- its last write; a retired row by those before it was retired. A truncated
-- pull proves nothing about the rows it did not return, so only complete runs
-- count (rows it returned that changed carry their own last_synced_at).
CREATE OR REPLACE VIEW public.asset_last_seen AS
SELECT a.id AS asset_id,
       GREATEST(a.last_synced_at,
                (SELECT max(r.synced_at)
                   FROM public.asset_sync_run r
                  WHERE r.portal_company_id = a.portal_company_id
                    AND r.msp_org_id = a.msp_org_id
                    AND r.external_source = a.external_source
                    AND r.complete
                    AND (a.retired_at IS NULL
                         OR a.duplicate_of_asset_id IS NOT NULL
                         OR r.synced_at < a.retired_at))) AS last_synced_at
  FROM public.asset a;

-- ---------------------------------------------------------------------------
-- psa_ticket.kind: FINDING (the measurement failed the rule) or NO_DATA (the
-- source sent nothing to measure). The two are titled and described apart,
-- and one never updates into the other: a change of kind resolves the open
-- ticket and opens a new one. description: the text the PSA shows.
-- ---------------------------------------------------------------------------

ALTER TABLE public.psa_ticket
  ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'FINDING'
    CONSTRAINT psa_ticket_kind_valid CHECK (kind IN ('FINDING', 'NO_DATA'));
ALTER TABLE public.psa_ticket
  ADD COLUMN IF NOT EXISTS description text;
