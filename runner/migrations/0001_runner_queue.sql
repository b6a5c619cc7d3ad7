-- 0001_runner_queue.sql: the durable job queue of regentra-runner.
--
-- Every job run, cron tick and emitted event is a row of runner.job. Workers
-- of any number of runner processes claim rows with FOR UPDATE SKIP LOCKED
-- (runner.claim_jobs), hold a lease they renew by heartbeat, and record the
-- outcome in the row. Applied inside one transaction by `regentra-runner
-- migrate`; idempotent anyway.

CREATE SCHEMA IF NOT EXISTS runner;

CREATE TABLE IF NOT EXISTS runner.job (
  id                bigserial PRIMARY KEY,
  -- a configured [job "name"] section, or PLUGIN.JOB for an event
  name              text NOT NULL CHECK (name <> ''),
  payload           jsonb NOT NULL DEFAULT '{}'::jsonb
                    CHECK (jsonb_typeof(payload) = 'object'),
  state             text NOT NULL DEFAULT 'available'
                    CHECK (state IN ('available', 'running', 'completed', 'dead')),
  priority          integer NOT NULL DEFAULT 0,
  run_at            timestamptz NOT NULL DEFAULT now(),
  attempt           integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
  max_attempts      integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
  idempotency_key   text,
  concurrency_key   text,
  concurrency_limit integer NOT NULL DEFAULT 1 CHECK (concurrency_limit >= 1),
  scheduled_at      timestamptz,          -- the cron tick this run is for
  parent_id         bigint,               -- the run that emitted it
  lease_owner       text,
  lease_expires_at  timestamptz,
  last_error        text,
  result            jsonb,
  summary           text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  finished_at       timestamptz,
  duration_ms       bigint,
  -- a running row always has a lease; no other row has one
  CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- The claim order, over claimable rows only.
CREATE INDEX IF NOT EXISTS job_available_idx
  ON runner.job (priority, run_at, id) WHERE state = 'available';
-- Lease expiry and concurrency-key counting look at running rows only.
CREATE INDEX IF NOT EXISTS job_running_lease_idx
  ON runner.job (lease_expires_at) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS job_running_key_idx
  ON runner.job (concurrency_key) WHERE state = 'running';
-- A re-sent event with the same key is a no-op while its row is kept.
CREATE UNIQUE INDEX IF NOT EXISTS job_idempotency_key_idx
  ON runner.job (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Retention pruning and the operator view.
CREATE INDEX IF NOT EXISTS job_finished_idx
  ON runner.job (state, finished_at);

-- One row per (configured job, cron minute): the unique key that makes a
-- tick run once however many runner processes see it. Kept apart from
-- runner.job so pruning finished runs never lets a tick be inserted again.
CREATE TABLE IF NOT EXISTS runner.cron_tick (
  job_name     text NOT NULL,
  scheduled_at timestamptz NOT NULL,
  job_id       bigint,
  inserted_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_name, scheduled_at)
);

-- Wake sleeping workers when a row becomes claimable. Identical
-- notifications within one transaction are delivered once.
CREATE OR REPLACE FUNCTION runner.notify_job_available()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM pg_notify('runner_job', '');
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS job_available_notify ON runner.job;
CREATE TRIGGER job_available_notify
  AFTER INSERT OR UPDATE OF state ON runner.job
  FOR EACH ROW WHEN (NEW.state = 'available')
  EXECUTE FUNCTION runner.notify_job_available();

-- Claims up to p_max claimable rows named in p_names for p_owner.
--
-- A row with a concurrency key is taken only while fewer than its limit of
-- rows with that key are running, counted here in the database, so the limit
-- holds across every runner process. pg_try_advisory_xact_lock serializes
-- claimers of one key without ever waiting (a key another claimer holds is
-- skipped this round), so two claims cannot both see "one slot free".
CREATE OR REPLACE FUNCTION runner.claim_jobs(p_owner text, p_names text[],
                                             p_max integer, p_lease_ms integer)
RETURNS TABLE (id bigint, name text, payload text, attempt integer,
               max_attempts integer, wait_ms double precision)
LANGUAGE plpgsql
AS $$
DECLARE
  r       record;
  taken   integer := 0;
  running integer;
BEGIN
  FOR r IN
    SELECT j.id, j.concurrency_key, j.concurrency_limit
      FROM runner.job j
     WHERE j.state = 'available' AND j.run_at <= now() AND j.name = ANY (p_names)
     ORDER BY j.priority, j.run_at, j.id
     LIMIT p_max * 4 + 16
       FOR UPDATE SKIP LOCKED
  LOOP
    EXIT WHEN taken >= p_max;
    IF r.concurrency_key IS NOT NULL THEN
      CONTINUE WHEN NOT pg_try_advisory_xact_lock(
        hashtextextended('runner.concurrency:' || r.concurrency_key, 0));
      SELECT count(*) INTO running FROM runner.job k
       WHERE k.concurrency_key = r.concurrency_key AND k.state = 'running';
      CONTINUE WHEN running >= r.concurrency_limit;
    END IF;
    RETURN QUERY
      UPDATE runner.job u
         SET state = 'running', attempt = u.attempt + 1, lease_owner = p_owner,
             lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
             started_at = clock_timestamp(), finished_at = NULL
       WHERE u.id = r.id
      RETURNING u.id, u.name, u.payload::text, u.attempt, u.max_attempts,
                (extract(epoch FROM clock_timestamp() - u.run_at) * 1000)::float8;
    taken := taken + 1;
  END LOOP;
END
$$;
