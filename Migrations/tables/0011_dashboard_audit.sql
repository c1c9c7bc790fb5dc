-- What operators did through the dashboard (docs/DESIGN.md, "The dashboard"): who (the name of the
-- admin token they signed in with), which action, on which tenant, with what values and outcome.
-- The dashboard deletes entries older than its retention (`--audit-retention-days`).
CREATE TABLE ef_dashboard_audit (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text        NOT NULL,
    action    text        NOT NULL,
    partition text,
    detail    jsonb       NOT NULL DEFAULT '{}',
    outcome   text        NOT NULL
);
-- Retention deletes by age.
CREATE INDEX ef_dashboard_audit_at ON ef_dashboard_audit (at);
