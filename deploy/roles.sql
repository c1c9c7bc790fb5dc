-- EventFleet's database roles, least privilege: a migrator that owns the schema, a runtime role
-- for the scheduler and the workers (data only, no DDL), and a read-only role for KEDA and
-- dashboards. Run it once as a role that may create roles (deploy/README.md, "Database roles"):
--
--   psql "$ADMIN_URL" -v schema=eventfleet -v migrator=eventfleet_migrator \
--        -v runtime=eventfleet_runtime -v readonly=eventfleet_readonly -f deploy/roles.sql
--
-- then set each role's password (\password eventfleet_runtime, ...) and give each process the URL
-- of its role: `eventfleet migrate` the migrator's, the scheduler and the workers the runtime's,
-- KEDA's trigger and dashboards the read-only one's.
CREATE ROLE :"migrator" LOGIN;
CREATE ROLE :"runtime" LOGIN;
CREATE ROLE :"readonly" LOGIN;
CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"migrator";
GRANT USAGE ON SCHEMA :"schema" TO :"runtime", :"readonly";

-- What the migrator creates: EventFleet's tables, and the read models of your migrations.
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA :"schema"
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"runtime";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA :"schema"
    GRANT USAGE, SELECT ON SEQUENCES TO :"runtime";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA :"schema"
    GRANT SELECT ON TABLES TO :"readonly";

-- What exists already, when a schema that one role ran so far moves to these roles.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA :"schema" TO :"runtime";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA :"schema" TO :"runtime";
GRANT SELECT ON ALL TABLES IN SCHEMA :"schema" TO :"readonly";

-- KEDA's query names ef_pool_demand without a schema, and its URL cannot carry EventFleet's
-- `schema` parameter (its driver would send it to the server as a setting): the role finds it.
ALTER ROLE :"readonly" SET search_path = :"schema";

-- The monitor's stall report names another role's append in flight (pg_stat_activity) only with
-- this; without it, an append holding a partition back shows no application name, state or age.
GRANT pg_read_all_stats TO :"runtime", :"readonly";
