-- asset.external_org_id: the source's organization a device came from, so
-- that an organization marked "don't sync" (IGNORED) takes its devices out
-- of the PSA asset list, even when other organizations feed the same
-- company. NULL for rows written before this column existed.
ALTER TABLE public.asset ADD COLUMN IF NOT EXISTS external_org_id text;

CREATE INDEX IF NOT EXISTS asset_source_org_idx
  ON public.asset (msp_org_id, external_source, external_org_id)
  WHERE status = 'ACTIVE';
