-- A projection registered without event types handles every type: its event_types is NULL, and
-- ef_schedule_global_log makes jobs for it from events of every type.
ALTER TABLE ef_projections ALTER COLUMN event_types DROP NOT NULL;
