/// The library's schema as the migration runner applies it: the numbered table migrations in
/// `tables/`, then the routines of `routines/`, one file each. The files are compiled into the
/// binary, so a deployed binary needs nothing beside it.
///
/// Every file in those folders is listed here; `MigrationTests` fails when one is missing.
package enum LibrarySchema {
    /// The numbered table migrations: (number, name, SQL).
    package static let tables: [(version: Int, name: String, sql: [UInt8])] = [
        (1, "store", PackageResources._001_store_sql),
        (2, "jobs", PackageResources._002_jobs_sql),
        (3, "projections_of_every_type", PackageResources._003_projections_of_every_type_sql),
        (4, "backfills", PackageResources._004_backfills_sql),
        (5, "worker_projections", PackageResources._005_worker_projections_sql),
        (6, "job_timeouts", PackageResources._006_job_timeouts_sql),
        (7, "log_horizon", PackageResources._007_log_horizon_sql),
        (8, "projection_rows", PackageResources._008_projection_rows_sql),
        (9, "projection_versions", PackageResources._009_projection_versions_sql),
        (10, "fleet_history", PackageResources._010_fleet_history_sql),
        (11, "dashboard_audit", PackageResources._011_dashboard_audit_sql),
    ]

    /// The routines, by name: (name, SQL).
    package static let routines: [(name: String, sql: [UInt8])] = [
        ("ef_append_to_stream", PackageResources.ef_append_to_stream_sql),
        ("ef_append_to_stream_committed", PackageResources.ef_append_to_stream_committed_sql),
        ("ef_backfill_page", PackageResources.ef_backfill_page_sql),
        ("ef_claim_jobs", PackageResources.ef_claim_jobs_sql),
        ("ef_complete_jobs", PackageResources.ef_complete_jobs_sql),
        ("ef_convert_checkpoints", PackageResources.ef_convert_checkpoints_sql),
        ("ef_enqueue_jobs", PackageResources.ef_enqueue_jobs_sql),
        ("ef_fail_job", PackageResources.ef_fail_job_sql),
        ("ef_fence_jobs", PackageResources.ef_fence_jobs_sql),
        ("ef_fleet_status", PackageResources.ef_fleet_status_sql),
        ("ef_global_log_has_more", PackageResources.ef_global_log_has_more_sql),
        ("ef_log_holds", PackageResources.ef_log_holds_sql),
        ("ef_log_horizon", PackageResources.ef_log_horizon_sql),
        ("ef_log_position_after", PackageResources.ef_log_position_after_sql),
        ("ef_mark_append", PackageResources.ef_mark_append_sql),
        ("ef_pool_demand", PackageResources.ef_pool_demand_sql),
        ("ef_projection_progress", PackageResources.ef_projection_progress_sql),
        ("ef_projection_versions", PackageResources.ef_projection_versions_sql),
        ("ef_purge_dead_jobs", PackageResources.ef_purge_dead_jobs_sql),
        ("ef_qualified_name", PackageResources.ef_qualified_name_sql),
        ("ef_record_fleet_minute", PackageResources.ef_record_fleet_minute_sql),
        ("ef_read_global_log", PackageResources.ef_read_global_log_sql),
        ("ef_read_log", PackageResources.ef_read_log_sql),
        ("ef_rebase_log", PackageResources.ef_rebase_log_sql),
        ("ef_release_jobs", PackageResources.ef_release_jobs_sql),
        ("ef_rescue_jobs", PackageResources.ef_rescue_jobs_sql),
        ("ef_retire_projection_version", PackageResources.ef_retire_projection_version_sql),
        ("ef_retry_dead_jobs", PackageResources.ef_retry_dead_jobs_sql),
        ("ef_schedule_global_log", PackageResources.ef_schedule_global_log_sql),
        ("ef_schedule_log", PackageResources.ef_schedule_log_sql),
        ("ef_settle_failed_jobs", PackageResources.ef_settle_failed_jobs_sql),
        ("ef_switch_projection_version", PackageResources.ef_switch_projection_version_sql),
    ]
}
