import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

extension ProjectionWorker {
    /// Runs a group of jobs of one projection to completion, failure or loss of their claims.
    ///
    /// Their streams are projected together, batch after batch, each batch one fenced transaction
    /// that also completes the jobs it finished. When a batch fails for a reason other than the
    /// database being away, one of the jobs is at fault: each then runs alone, so that only the
    /// job at fault fails (and retries or ends dead) while the others complete.
    func execute(_ group: [Job]) async {
        guard let first = group.first else { return }
        let started = ContinuousClock.now
        var logger = self.logger
        if group.count == 1 {
            logger[metadataKey: "eventfleet.job_id"] = "\(first.id)"
            logger[metadataKey: "eventfleet.stream_id"] = "\(first.streamId)"
            logger[metadataKey: "eventfleet.partition"] = "\(first.partition)"
        } else {
            logger[metadataKey: "eventfleet.job_ids"] = "\(group.map(\.id))"
        }
        guard let projection = projections[first.projection] else {
            // Claims take only this worker's projections (its registration names them), but a claim
            // made while the registration was gone (declared dead, not yet registered again) takes
            // any: hand those back with their attempt uncounted, for a worker that runs them.
            logger.warning(
                "claimed jobs of a projection this worker does not run; handing them back",
                metadata: ["eventfleet.projection": "\(first.projection)"]
            )
            do {
                try await queue.release(group, worker: configuration.workerId)
            } catch {
                logger.warning("could not hand jobs back; they are rescued", metadata: ["eventfleet.error": "\(error)"])
            }
            return
        }
        var remaining = group
        var backoff = Backoff()
        while !remaining.isEmpty && !Task.isCancelled {
            let batchStarted = ContinuousClock.now
            let failure: any Error
            do {
                let batch = try await runBatch(remaining, projection: projection, logger: logger)
                metrics.eventsProjected.increment(by: batch.applied)
                if !batch.lost.isEmpty {
                    logger.info("claim lost (rescued or finished elsewhere); nothing committed", metadata: ["eventfleet.lost_job_ids": "\(batch.lost.map(\.id))"])
                }
                state.withLock { state in
                    for job in batch.finished { state.counts.recordCompleted(job) }
                    // Their slots are free now, while the group's other streams go on.
                    for job in batch.finished + batch.lost { state.release(job) }
                }
                // After the slots are free: a claim need not wait for the notifying statement.
                if batch.applied > 0 {
                    await store.notifyProjected(streams: (batch.finished + batch.unfinished).map { ($0.partition, $0.streamId) })
                }
                metrics.completed.increment(by: batch.finished.count)
                let duration = ContinuousClock.now - started
                for _ in batch.finished { metrics.jobDuration.record(duration: duration) }
                remaining = batch.unfinished
                backoff.reset()
                continue
            } catch is CancellationError {
                return
            } catch where PostgresErrorMapping.isTransient(error) && !Task.isCancelled {
                guard let ended = await endedForIdling(openFor: ContinuousClock.now - batchStarted) else {
                    // The database is away: keep the claims (heartbeats hold them) and try again.
                    logger.warning("database unavailable during job; retrying", metadata: ["eventfleet.error": "\(error)"])
                    try? await Task.sleep(for: backoff.next())
                    continue
                }
                failure = ended
            } catch {
                failure = error
            }
            guard remaining.count > 1 else {
                logger.debug("job failed", metadata: ["eventfleet.error": "\(failure)"])
                await settleFailure(remaining[0], error: failure, logger: logger)
                return
            }
            logger.debug("a batch of several jobs failed; running them one by one", metadata: ["eventfleet.error": "\(failure)"])
            for job in remaining where !Task.isCancelled {
                await execute([job])
            }
            return
        }
        if Task.isCancelled { logger.debug("job cancelled") }
    }

    /// The failure of a batch whose connection was lost, when the server ended the batch's
    /// transaction for idling longer than ``Configuration/idleTransactionTimeout`` (the work
    /// between two of its statements, a fold or a call of the projection's, took that long) rather
    /// than the database going away: the transaction was open at least that long, and the database
    /// answers now. `nil` otherwise, and the batch is retried with its claims kept.
    ///
    /// Such a batch fails every time it runs, so it must count as an attempt and end dead, not
    /// retry forever holding its tenant's slot. The server's own error (SQLSTATE 25P03) cannot
    /// tell: postgres-nio surfaces only the closed connection, and a pooler answers with its own
    /// error instead.
    private func endedForIdling(openFor open: Duration) async -> JobQueueError? {
        guard open >= configuration.idleTransactionTimeout else { return nil }
        guard (try? await store.database.value("probe the database", "SELECT true", as: Bool.self)) == true else { return nil }
        return .transactionEndedForIdling(openFor: open, idleTimeout: configuration.idleTransactionTimeout)
    }

    /// What one batch of a group did.
    struct GroupBatch: Sendable {
        var applied = 0
        /// Completed (or requeued because new events came) in the batch's transaction.
        var finished: [Job] = []
        /// Held, with more events to project.
        var unfinished: [Job] = []
        /// No longer this worker's.
        var lost: [Job] = []
    }

    /// Projects one batch of each job's stream in a fenced transaction that completes the jobs
    /// whose streams it caught up.
    private func runBatch(_ jobs: [Job], projection: any StreamProjection, logger: Logger) async throws -> GroupBatch {
        try Task.checkCancellation()
        return try await inTransaction { [self] context in
            var batch = GroupBatch()
            logger.trace("batch: fencing")
            let held = try await queue.fence(jobs, worker: configuration.workerId, on: context.connection, idleTimeout: configuration.idleTransactionTimeout)
            let heldIds = Set(held.map(\.id))
            batch.lost = jobs.filter { !heldIds.contains($0.id) }
            guard !held.isEmpty else { return batch }
            logger.trace("batch: projecting")
            let outcomes = try await projection.project(
                streams: held.map { StreamTarget(partition: $0.partition, streamId: $0.streamId) },
                batchSize: configuration.batchSize, context: context
            )
            var caughtUp: [Job] = []
            for (job, outcome) in zip(held, outcomes) {
                batch.applied += outcome.applied
                if outcome.caughtUp { caughtUp.append(job) } else { batch.unfinished.append(job) }
            }
            logger.trace("batch: projected", metadata: ["eventfleet.events": "\(batch.applied)"])
            let completions = try await queue.complete(caughtUp, worker: configuration.workerId, on: context.connection)
            let settled = Set(completions.completed + completions.requeued)
            batch.finished = caughtUp.filter { settled.contains($0.id) }
            batch.lost += caughtUp.filter { !settled.contains($0.id) }
            return batch
        }
    }

    /// Records a failed attempt: the job retries later, or ends dead after its last attempt.
    private func settleFailure(_ job: Job, error: any Error, logger: Logger) async {
        let delay = configuration.retryBackoff.delay(beforeRetry: job.attempt)
        var backoff = Backoff()
        while true {
            do {
                let outcome = try await queue.fail(job, worker: configuration.workerId, error: String(describing: error), retryDelay: delay)
                state.withLock { $0.counts.recordFailed(job) }
                metrics.failed.increment()
                switch outcome {
                case .dead:
                    metrics.dead.increment()
                    logger.error("job failed for the last time and is dead", metadata: ["eventfleet.attempt": "\(job.attempt)", "eventfleet.error": "\(error)"])
                case .retrying(let runAt):
                    logger.warning("job failed; retrying", metadata: ["eventfleet.attempt": "\(job.attempt)", "eventfleet.run_at": "\(runAt)", "eventfleet.error": "\(error)"])
                }
                return
            } catch JobQueueError.claimLost {
                return
            } catch where PostgresErrorMapping.isTransient(error) && !Task.isCancelled {
                try? await Task.sleep(for: backoff.next())
            } catch {
                logger.error("could not record the failure; the job is rescued if this worker stops", metadata: ["eventfleet.error": "\(error)"])
                return
            }
        }
    }

    /// Runs a job batch in a transaction on one connection.
    func inTransaction<T: Sendable>(_ body: @Sendable @escaping (ProjectionContext) async throws -> T) async throws -> T {
        try await store.database.transaction("run job") { [store, logger] connection in
            try await body(ProjectionContext(connection, store: store, logger: logger))
        }
    }
}
