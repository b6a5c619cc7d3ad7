-- 0003_rate_budget.sql: upstream request budgets shared by every runner
-- process of the database.
--
-- One runner.rate_bucket row per rate key (e.g. one NinjaOne credential in
-- one region). A process does not ask the database before each request: it
-- takes a grant of a few seconds' worth of requests (runner.rate_take),
-- spends it locally at the paced rate, and hands back what it did not use
-- with its next call. A grant covers a time slot [starts_at, ends_at]; every
-- request made under it falls inside the slot, so a sliding window of
-- `period_ms` that sees a request at time t only meets grants whose slot
-- ends after t - period_ms. A new grant is given only if, for every window,
-- the tokens of the grants ending after (its start - period) plus its own
-- stay within the limit. A process that dies keeps its grant counted in
-- full until the slot has aged out of every window: nothing to reclaim.
--
-- Pacing across processes: `tat` is the earliest start of the next grant;
-- each grant moves it on by tokens * spacing_ms, so the processes together
-- send at most one request per spacing_ms on average. A pause (429,
-- Retry-After) seen by one process is passed on with its next call and
-- holds the next grants of every process.

CREATE SCHEMA IF NOT EXISTS runner;

CREATE TABLE IF NOT EXISTS runner.rate_bucket (
  key          text PRIMARY KEY CHECK (key <> ''),
  -- the windows last declared: [{"limit": N, "period_ms": P}, ...]
  windows      jsonb NOT NULL CHECK (jsonb_typeof(windows) = 'array'),
  spacing_ms   integer NOT NULL DEFAULT 0 CHECK (spacing_ms >= 0),
  tat          timestamptz NOT NULL DEFAULT clock_timestamp(),
  paused_until timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS runner.rate_grant (
  id        bigserial PRIMARY KEY,
  key       text NOT NULL REFERENCES runner.rate_bucket (key) ON DELETE CASCADE,
  holder    text NOT NULL,           -- host:pid:nonce of the runner process
  tokens    integer NOT NULL CHECK (tokens >= 0),
  starts_at timestamptz NOT NULL,
  ends_at   timestamptz NOT NULL CHECK (ends_at >= starts_at),
  returned  boolean NOT NULL DEFAULT false
);

CREATE INDEX IF NOT EXISTS rate_grant_key_ends
  ON runner.rate_grant (key, ends_at);

-- Hands back the rest of grant p_return_id (p_return_spent of its tokens were
-- used), records a pause of p_pause_ms, then grants up to p_want tokens
-- (p_want 0: none). tokens 0 with want > 0 comes with retry_ms, when to
-- ask again. delay_ms: the slot starts that long after the call; valid_ms:
-- its length. conflict: p_windows differ from what another process
-- declared for the key last.
CREATE OR REPLACE FUNCTION runner.rate_take(
    p_key text, p_holder text, p_want integer, p_windows jsonb,
    p_spacing_ms integer, p_return_id bigint, p_return_spent integer,
    p_pause_ms bigint)
  RETURNS TABLE (grant_id bigint, tokens integer, delay_ms bigint,
                 valid_ms bigint, retry_ms bigint, conflict boolean)
  LANGUAGE plpgsql AS $$
DECLARE
  v_now       timestamptz := clock_timestamp();
  v_bucket    runner.rate_bucket;
  v_start     timestamptz;
  v_end       timestamptz;
  v_n         integer := greatest(p_want, 0);
  v_retry     timestamptz := NULL;
  v_window    jsonb;
  v_limit     integer;
  v_period    interval;
  v_used      bigint;
  v_oldest    timestamptz;
  v_unused    integer;
  v_orig      integer;
  v_max_period interval := interval '0';
  v_conflict  boolean := false;
  v_id        bigint;
  -- slack for the time a request takes to leave after its admission
  c_slack     constant interval := interval '2 seconds';
  -- a grant starts at most this far ahead; later ones are asked again
  c_ahead     constant interval := interval '10 seconds';
BEGIN
  IF p_key IS NULL OR p_key = '' OR jsonb_typeof(p_windows) <> 'array' THEN
    RAISE EXCEPTION 'rate_take: a key and an array of windows are required'
      USING ERRCODE = '22023';
  END IF;
  INSERT INTO runner.rate_bucket AS b (key, windows, spacing_ms)
    VALUES (p_key, p_windows, greatest(p_spacing_ms, 0))
    ON CONFLICT (key) DO NOTHING;
  SELECT * INTO v_bucket FROM runner.rate_bucket WHERE key = p_key FOR UPDATE;
  IF v_bucket.windows <> p_windows THEN
    v_conflict := true;
  END IF;

  IF p_return_id IS NOT NULL THEN
    SELECT g.tokens INTO v_orig FROM runner.rate_grant g
     WHERE g.id = p_return_id AND g.key = p_key AND g.holder = p_holder
       AND NOT g.returned;
    IF FOUND THEN
      UPDATE runner.rate_grant g
         SET tokens = least(g.tokens, greatest(p_return_spent, 0)),
             ends_at = greatest(g.starts_at, least(g.ends_at, v_now)),
             returned = true
       WHERE g.id = p_return_id;
      v_unused := greatest(v_orig - greatest(p_return_spent, 0), 0);
      -- Unused tokens give their pacing slots back when no later grant
      -- was planned behind them.
      IF v_unused > 0 AND NOT EXISTS (SELECT 1 FROM runner.rate_grant g
                                       WHERE g.key = p_key
                                         AND g.id > p_return_id) THEN
        v_bucket.tat := greatest(v_now, v_bucket.tat
                          - (v_unused * greatest(p_spacing_ms, 0))
                            * interval '1 millisecond');
      END IF;
    END IF;
  END IF;

  IF p_pause_ms > 0 THEN
    v_bucket.paused_until := greatest(coalesce(v_bucket.paused_until, v_now),
                                      v_now + p_pause_ms * interval '1 millisecond');
  END IF;

  v_start := greatest(v_now, v_bucket.tat, coalesce(v_bucket.paused_until, v_now));
  IF v_n > 0 AND v_start > v_now + c_ahead THEN
    v_retry := v_start - c_ahead;
    v_n := 0;
  END IF;

  FOR v_window IN SELECT * FROM jsonb_array_elements(p_windows) LOOP
    v_limit := (v_window ->> 'limit')::integer;
    v_period := ((v_window ->> 'period_ms')::bigint) * interval '1 millisecond';
    v_max_period := greatest(v_max_period, v_period);
    IF v_n = 0 THEN
      CONTINUE;
    END IF;
    SELECT coalesce(sum(g.tokens), 0), min(g.ends_at) INTO v_used, v_oldest
      FROM runner.rate_grant g
     WHERE g.key = p_key AND g.ends_at > v_start - v_period AND g.tokens > 0;
    IF v_used + v_n > v_limit THEN
      v_n := greatest(v_limit - v_used, 0)::integer;
      IF v_n = 0 THEN
        -- room comes back when the oldest grant in the window ages out
        v_retry := greatest(coalesce(v_retry, v_now), v_oldest + v_period);
      END IF;
    END IF;
  END LOOP;

  -- Slots that aged out of every window are of no use any more.
  DELETE FROM runner.rate_grant g
   WHERE g.key = p_key AND g.ends_at < v_now - v_max_period - interval '1 minute';

  IF v_n = 0 THEN
    UPDATE runner.rate_bucket
       SET windows = p_windows, spacing_ms = greatest(p_spacing_ms, 0),
           tat = v_bucket.tat, paused_until = v_bucket.paused_until,
           updated_at = v_now
     WHERE key = p_key;
    RETURN QUERY SELECT 0::bigint, 0, 0::bigint, 0::bigint,
      CASE WHEN p_want > 0
           THEN greatest(ceil(extract(epoch FROM coalesce(v_retry, v_now + interval '1 second') - v_now) * 1000)::bigint, 100)
           ELSE 0::bigint END,
      v_conflict;
    RETURN;
  END IF;

  v_end := v_start + (v_n * greatest(p_spacing_ms, 0)) * interval '1 millisecond' + c_slack;
  INSERT INTO runner.rate_grant (key, holder, tokens, starts_at, ends_at)
    VALUES (p_key, p_holder, v_n, v_start, v_end)
    RETURNING id INTO v_id;
  UPDATE runner.rate_bucket
     SET windows = p_windows, spacing_ms = greatest(p_spacing_ms, 0),
         tat = v_start + (v_n * greatest(p_spacing_ms, 0)) * interval '1 millisecond',
         paused_until = v_bucket.paused_until, updated_at = v_now
   WHERE key = p_key;
  RETURN QUERY SELECT v_id, v_n,
    ceil(extract(epoch FROM v_start - v_now) * 1000)::bigint,
    floor(extract(epoch FROM v_end - v_start) * 1000)::bigint,
    0::bigint, v_conflict;
END;
$$;
