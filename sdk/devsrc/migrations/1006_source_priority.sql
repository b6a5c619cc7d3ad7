-- 1006_source_priority.sql: the order in which an MSP's device sources win
-- cross-source dedup, and the retention of asset sync runs.

-- ---------------------------------------------------------------------------
-- msp_source_priority: at most one row per MSP org. sources lists source
-- names highest first; a source it does not name ranks after the named ones,
-- in the default order (ninjaone, level, intune, entra). No row: the default
-- order. Every asset sync, retirement and dedup of the MSP reads it in its
-- own transaction, so every plugin ranks the same way.
-- ---------------------------------------------------------------------------

-- No element named twice (a CHECK cannot hold a subquery; a function can).
CREATE OR REPLACE FUNCTION public.text_array_distinct(a text[])
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = public, pg_temp
AS $$
  SELECT cardinality(a) = (SELECT count(DISTINCT x) FROM unnest(a) AS x)
$$;

CREATE TABLE IF NOT EXISTS public.msp_source_priority (
  msp_org_id bigint PRIMARY KEY
    REFERENCES public.organization (id) ON DELETE CASCADE,
  sources    text[]      NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT msp_source_priority_sources_not_empty
    CHECK (cardinality(sources) >= 1 AND array_position(sources, NULL) IS NULL),
  CONSTRAINT msp_source_priority_sources_valid
    CHECK (array_to_string(sources, ',') ~ '^[a-z0-9][a-z0-9_.-]*(,[a-z0-9][a-z0-9_.-]*)*$'),
  CONSTRAINT msp_source_priority_sources_distinct
    CHECK (public.text_array_distinct(sources))
);

CREATE OR REPLACE TRIGGER msp_source_priority_msp_kind
  BEFORE INSERT OR UPDATE OF msp_org_id ON public.msp_source_priority
  FOR EACH ROW EXECUTE FUNCTION public.require_organization_kind('msp_org_id', 'MSP');
