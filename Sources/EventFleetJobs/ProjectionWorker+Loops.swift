import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

extension ProjectionWorker {
    /// Claims while there are free slots; on graceful shutdown stops claiming and drains.
    func claimLoop() async {
        // A discarding group: a plain task group keeps every finished job's task until it is
        // awaited, so a long-running worker grew with every job it ran.
        await withDiscardingTaskGroup { jobs in
            var failures = 0
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let free = configuration.concurrency - state.withLock { $0.inFlight.count }
                if free > 0 {
                    do {
                        let claimed = try await queue.claim(
                            worker: configuration.workerId, lanes: configuration.lanes, partitions: configuration.partitions, slots: free
                        )
                        failures = 0
                        metrics.claimed.increment(by: claimed.count)
                        for job in claimed {
                            state.withLock { $0.inFlight[job.id] = job }
                            jobs.addTask {
                                await self.execute(job)
                                let running = self.state.withLock { state in
                                    state.inFlight[job.id] = nil
                                    return state.inFlight.count
                                }
                                self.metrics.running.record(running)
                                self.wakeup.signal()
                            }
                        }
                        metrics.running.record(state.withLock { $0.inFlight.count })
                        // A full claim means there may be more: go again as soon as a slot frees.
                        if !claimed.isEmpty && claimed.count == free { continue }
                    } catch {
                        failures += 1
                        logger.warning("claim failed; retrying", metadata: ["eventfleet.error": "\(error)"])
                        await wakeup.wait(timeout: RetryPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(5)).delay(beforeRetry: min(failures, 10)))
                        continue
                    }
                }
                await wakeup.wait(timeout: configuration.pollInterval)
            }
            await drain(jobs: &jobs)
        }
    }

    /// Lets in-flight jobs finish within the drain timeout, then cancels and hands back the rest.
    private func drain(jobs: inout DiscardingTaskGroup) async {
        let deadline = ContinuousClock.now + configuration.drainTimeout
        while state.withLock({ !$0.inFlight.isEmpty }), ContinuousClock.now < deadline {
            await wakeup.wait(timeout: min(.milliseconds(100), deadline - ContinuousClock.now))
        }
        let unfinished = inFlight
        guard !unfinished.isEmpty else { return }
        logger.warning("drain timeout: handing unfinished jobs back", metadata: ["eventfleet.jobs": "\(unfinished.map(\.id))"])
        jobs.cancelAll()
        // Each job leaves `inFlight` when its task ends: wait for the cancelled ones to stop.
        while state.withLock({ !$0.inFlight.isEmpty }) {
            await wakeup.wait(timeout: .milliseconds(50))
        }
        do {
            try await queue.release(unfinished, worker: configuration.workerId)
        } catch {
            logger.error("could not hand jobs back; they are rescued when the heartbeat stops", metadata: ["eventfleet.error": "\(error)"])
        }
    }

    /// Runs one job to completion, failure or loss of the claim.
    func execute(_ job: Job) async {
        var logger = self.logger
        logger[metadataKey: "eventfleet.job_id"] = "\(job.id)"
        logger[metadataKey: "eventfleet.stream_id"] = "\(job.streamId)"
        logger[metadataKey: "eventfleet.partition"] = "\(job.partition)"
        let started = ContinuousClock.now
        guard let projection = projections[job.projection] else {
            await settleFailure(job, error: JobQueueError.unknownProjection(jobId: job.id, projection: job.projection), logger: logger)
            return
        }
        var transientFailures = 0
        while !Task.isCancelled {
            do {
                try await runBatches(job, projection: projection, logger: logger)
                state.withLock { $0.counts.recordCompleted(job) }
                metrics.completed.increment()
                metrics.jobDuration.record(duration: ContinuousClock.now - started)
                return
            } catch is CancellationError {
                return
            } catch JobQueueError.claimLost {
                logger.info("claim lost (rescued or finished elsewhere); nothing committed")
                return
            } catch where PostgresErrorMapping.isTransient(error) && !Task.isCancelled {
                // The database is away: keep the claim (heartbeats hold it) and try again.
                transientFailures += 1
                logger.warning("database unavailable during job; retrying", metadata: ["eventfleet.error": "\(error)"])
                try? await Task.sleep(for: RetryPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(5)).delay(beforeRetry: min(transientFailures, 10)))
            } catch {
                logger.debug("job failed", metadata: ["eventfleet.error": "\(error)"])
                await settleFailure(job, error: error, logger: logger)
                return
            }
        }
        logger.debug("job cancelled")
    }

    /// Projects batch after batch, each in a fenced transaction; the last one completes the job.
    private func runBatches(_ job: Job, projection: any StreamProjection, logger: Logger) async throws {
        while true {
            try Task.checkCancellation()
            let (applied, finished) = try await inTransaction { [self] context in
                logger.trace("batch: fencing")
                try await queue.fence(job, worker: configuration.workerId, on: context.connection, idleTimeout: configuration.idleTransactionTimeout)
                logger.trace("batch: projecting")
                let applied = try await projection.project(
                    streamId: job.streamId, partition: job.partition, upTo: nil, batchSize: configuration.batchSize, context: context
                )
                logger.trace("batch: projected", metadata: ["eventfleet.events": "\(applied)"])
                guard applied < configuration.batchSize else { return (applied, false) }
                try await queue.complete(job, worker: configuration.workerId, on: context.connection)
                return (applied, true)
            }
            logger.trace("batch: committed")
            metrics.eventsProjected.increment(by: applied)
            if finished { return }
        }
    }

    /// Records a failed attempt: the job retries later, or ends dead after its last attempt.
    private func settleFailure(_ job: Job, error: any Error, logger: Logger) async {
        let delay = configuration.retryBackoff.delay(beforeRetry: job.attempt)
        var failures = 0
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
                failures += 1
                try? await Task.sleep(for: RetryPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(5)).delay(beforeRetry: min(failures, 10)))
            } catch {
                logger.error("could not record the failure; the job is rescued if this worker stops", metadata: ["eventfleet.error": "\(error)"])
                return
            }
        }
    }

    /// Heartbeats and flushes counts; re-registers when the scheduler declared this worker dead.
    func heartbeatLoop() async {
        // The queue-depth gauge is refreshed about every 5 s, not on every beat.
        let depthEvery = max(1, Int((Duration.seconds(5) / configuration.heartbeatInterval).rounded()))
        var beats = 0
        var seenDepths = Set<[String]>()
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            if Task.isCancelled { return }
            beats += 1
            if beats % depthEvery == 1 || depthEvery == 1 {
                if let depths = try? await queue.readyDepth(partitions: configuration.partitions) {
                    seenDepths = metrics.recordReady(depths, previously: seenDepths)
                }
            }
            let counts = state.withLock { state in
                defer { state.counts = JobCounts() }
                return state.counts
            }
            do {
                let alive = try await queue.heartbeat(worker: configuration.workerId, draining: Task.isShuttingDownGracefully, counts: counts)
                if !alive {
                    logger.error("declared dead by the scheduler (missed heartbeats); jobs in flight will fail their fence; registering again")
                    try await queue.register(registration)
                }
            } catch {
                state.withLock { $0.counts.merge(counts) }
                logger.warning("heartbeat failed", metadata: ["eventfleet.error": "\(error)"])
            }
        }
    }

    /// Runs a job batch in a transaction on one connection.
    func inTransaction<T: Sendable>(_ body: @Sendable @escaping (ProjectionContext) async throws -> T) async throws -> T {
        do {
            return try await store.client.withGuardedTransaction(logger: logger) { [store, logger] connection in
                try await body(ProjectionContext(connection: connection, store: store, logger: logger))
            }
        } catch {
            throw PostgresErrorMapping.map(error, operation: "run job", target: store.options.databaseTarget)
        }
    }
}
