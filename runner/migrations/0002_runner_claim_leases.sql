-- 0002_runner_claim_leases.sql: claims that see past busy concurrency keys,
-- and leases that a short outage does not cost.
--
-- claim_jobs used to lock the first p_max*4+16 claimable rows and give up
-- when all of them waited on keys at their limit, so a free row further back
-- was never claimed. It now leaves out keys already at their limit in the
-- candidate query (counted from the running rows alone, over
-- job_running_key_idx) and keeps reading until it has p_max rows.
--
-- A reclaimed row remembers the runner that lost it (lease_lost_by) until it
-- is claimed again, so that runner can still record a successful outcome it
-- finished meanwhile instead of dropping it.

ALTER TABLE runner.job ADD COLUMN IF NOT EXISTS lease_lost_by text;

CREATE OR REPLACE FUNCTION runner.claim_jobs(p_owner text, p_names text[],
                                             p_max integer, p_lease_ms integer)
RETURNS TABLE (id bigint, name text, payload text, attempt integer,
               max_attempts integer, wait_ms double precision)
LANGUAGE plpgsql
AS $$
DECLARE
  r         record;
  taken     integer := 0;
  running   integer;
  -- keys found at their limit (or held by another claimer) this round
  full_keys text[] := '{}';
BEGIN
  -- Keys at their limit now, from the running rows alone (a handful, over
  -- job_running_key_idx); a key's limit is taken from its running rows.
  SELECT coalesce(array_agg(k.key), '{}') INTO full_keys
    FROM (SELECT b.concurrency_key AS key FROM runner.job b
           WHERE b.state = 'running' AND b.concurrency_key IS NOT NULL
           GROUP BY b.concurrency_key
          HAVING count(*) >= max(b.concurrency_limit)) k;
  FOR r IN
    SELECT j.id, j.concurrency_key, j.concurrency_limit
      FROM runner.job j
     WHERE j.state = 'available' AND j.run_at <= now() AND j.name = ANY (p_names)
       AND (j.concurrency_key IS NULL OR j.concurrency_key <> ALL (full_keys))
     ORDER BY j.priority, j.run_at, j.id
     -- Rows are locked as the loop reads them, so a claim that stops at
     -- p_max locks no more. The limit keeps one claim short when thousands
     -- of rows queue behind a key this very claim fills (the next claim
     -- leaves that key out above).
     LIMIT p_max * 4 + 1000
       FOR UPDATE SKIP LOCKED
  LOOP
    EXIT WHEN taken >= p_max;
    IF r.concurrency_key IS NOT NULL THEN
      CONTINUE WHEN r.concurrency_key = ANY (full_keys);
      IF NOT pg_try_advisory_xact_lock(
           hashtextextended('runner.concurrency:' || r.concurrency_key, 0)) THEN
        full_keys := full_keys || r.concurrency_key;
        CONTINUE;
      END IF;
      SELECT count(*) INTO running FROM runner.job k
       WHERE k.concurrency_key = r.concurrency_key AND k.state = 'running';
      IF running >= r.concurrency_limit THEN
        full_keys := full_keys || r.concurrency_key;
        CONTINUE;
      END IF;
    END IF;
    RETURN QUERY
      UPDATE runner.job u
         SET state = 'running', attempt = u.attempt + 1, lease_owner = p_owner,
             lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
             lease_lost_by = NULL,
             started_at = clock_timestamp(), finished_at = NULL
       WHERE u.id = r.id
      RETURNING u.id, u.name, u.payload::text, u.attempt, u.max_attempts,
                (extract(epoch FROM clock_timestamp() - u.run_at) * 1000)::float8;
    taken := taken + 1;
  END LOOP;
END
$$;
