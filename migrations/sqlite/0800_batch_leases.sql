-- Batches across gateway processes (issue 16 item 4): the process running a batch holds a
-- lease on its row (owner, expiry in Unix ms) and a fencing token (lease_gen, incremented by
-- each claim) that every write of the batch's rows names, so that another process takes an
-- unfinished batch over once the lease expires and a stale holder's late writes are refused.
ALTER TABLE batches ADD COLUMN lease_owner TEXT;
ALTER TABLE batches ADD COLUMN lease_until_ms BIGINT;
ALTER TABLE batches ADD COLUMN lease_gen BIGINT NOT NULL DEFAULT 0;
CREATE INDEX batches_unfinished ON batches (created_at, id) WHERE state IN ('queued', 'running');
