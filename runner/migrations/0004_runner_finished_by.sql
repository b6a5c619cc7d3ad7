-- 0004_runner_finished_by.sql: which runner process ran a job.
--
-- lease_owner is cleared when a run's outcome is written, so once a job had
-- ended nothing said which of the runner processes sharing the database ran
-- it. finished_by keeps that identity (host:pid:nonce, as in lease_owner):
-- the statement that ends an attempt (completed, failed and retrying, dead,
-- or its lease expired) writes the runner whose attempt it was. It stays
-- until the next attempt ends, like last_error.

ALTER TABLE runner.job ADD COLUMN IF NOT EXISTS finished_by text;
