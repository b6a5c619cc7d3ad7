-- 0005_runner_ticks_first.sql: a due cron tick is claimed ahead of the
-- fan-out rows queued before it.
--
-- Claims went by (priority, run_at, id). A tick row (scheduled_at set; it
-- usually only emits one job per customer) is inserted when its minute
-- comes, at the default priority 0, so it queued behind every due row of
-- priority 0 inserted before it: with every worker busy, each slot that
-- freed up went to the oldest of the per-customer rows another run had
-- fanned out, and the :30 evidence sweep tick of a 1,000-customer run
-- waited about 3 minutes for that backlog instead of for one free slot.
--
-- Now a due tick comes first among the rows of its own priority. It still
-- waits for a free worker, stays behind rows of a lower priority value, and
-- is still skipped while its cron:NAME concurrency key is at its limit (its
-- previous tick still running). The claim order's index follows.

CREATE INDEX IF NOT EXISTS job_claim_order_idx
  ON runner.job (priority, (scheduled_at IS NULL), run_at, id)
  WHERE state = 'available';
DROP INDEX IF EXISTS runner.job_available_idx;

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
     -- A due cron tick first among rows of its priority (see above).
     ORDER BY j.priority, (j.scheduled_at IS NULL), j.run_at, j.id
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
