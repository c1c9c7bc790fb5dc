-- The projections each worker runs, so it claims only jobs it can run (ef_claim_jobs) and the
-- monitor can show jobs no live worker runs. NULL: every projection (a worker of an earlier
-- release, which does not say).
ALTER TABLE ef_workers ADD COLUMN projections text[];
