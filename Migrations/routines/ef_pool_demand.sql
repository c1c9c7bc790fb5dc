-- ef_pool_demand: the job slots a pool of workers could keep busy right now, for an autoscaler
-- (KEDA's postgresql trigger calls it): per tenant and lane, the pool's ready jobs that are due
-- plus its running ones, but no more than the tenant's cap on running jobs (16 without a quota
-- row), and nothing for a paused tenant. Only jobs the pool can run count: of its projections, in
-- its lanes, of its partitions (NULL: every projection, every partition). A pool that counted jobs
-- it cannot claim would scale up for them and never back down.
--
-- It reads only the partial index of live jobs (state ready or running).
CREATE OR REPLACE FUNCTION ef_pool_demand(p_projections text[], p_lanes text[], p_partitions text[])
RETURNS bigint
LANGUAGE sql
STABLE
SET search_path FROM CURRENT
-- Polled by dashboards, monitors and autoscalers: compiling it (which the job table's cost
-- estimates trigger once it has churned) would cost several times the read itself.
SET jit = off
AS $$
    SELECT coalesce(sum(least(d.ready + d.running, coalesce(q.max_running, 16))), 0)::bigint
      FROM (SELECT j.partition, j.lane,
                   count(*) FILTER (WHERE j.state = 'ready' AND j.run_at <= now()) AS ready,
                   count(*) FILTER (WHERE j.state = 'running') AS running
              FROM ef_jobs j
             WHERE j.state IN ('ready', 'running')
               AND (p_projections IS NULL OR j.projection = ANY (p_projections))
               AND j.lane = ANY (p_lanes)
               AND (p_partitions IS NULL OR j.partition = ANY (p_partitions))
             GROUP BY j.partition, j.lane) d
      LEFT JOIN ef_tenant_quotas q ON q.partition = d.partition AND q.lane = d.lane
     WHERE NOT coalesce(q.paused, false)
$$;
