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
            var backoff = Backoff()
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let (freeJobs, freeTransactions) = state.withLock { state in
                    (configuration.concurrency - state.inFlight.count, configuration.maxTransactions - state.transactions)
                }
                // Claim only what the free transactions can take: while they are all busy, ready jobs
                // wait and are then claimed, and projected, together.
                let free = min(freeJobs, freeTransactions * configuration.jobsPerTransaction)
                if free > 0 {
                    do {
                        let claimed = try await queue.claim(
                            worker: configuration.workerId, lanes: configuration.lanes, partitions: configuration.partitions, slots: free
                        )
                        backoff.reset()
                        metrics.claimed.increment(by: claimed.count)
                        let groups = Self.transactionGroups(claimed, size: configuration.jobsPerTransaction)
                        // Groups of different projections beyond the free transactions queue up behind others.
                        let lanes = stride(from: 0, to: min(groups.count, freeTransactions), by: 1).map { lane in
                            stride(from: lane, to: groups.count, by: freeTransactions).map { groups[$0] }
                        }
                        state.withLock { state in
                            for job in claimed { state.inFlight[job.id] = job }
                            state.transactions += lanes.count
                        }
                        for lane in lanes {
                            jobs.addTask {
                                for group in lane {
                                    await self.execute(group)
                                    let running = self.state.withLock { state in
                                        for job in group { state.release(job) }
                                        return state.inFlight.count
                                    }
                                    self.metrics.running.record(running)
                                }
                                self.state.withLock { $0.transactions -= 1 }
                                self.wakeup.signal()
                            }
                        }
                        metrics.running.record(state.withLock { $0.inFlight.count })
                        // A full claim means there may be more: go again as soon as a slot frees.
                        if !claimed.isEmpty && claimed.count == free { continue }
                    } catch {
                        logger.warning("claim failed; retrying", metadata: ["eventfleet.error": "\(error)"])
                        await wakeup.wait(timeout: backoff.next())
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

    /// Splits claimed jobs into groups that share transactions: jobs of one projection, at most
    /// `size` in a group.
    package static func transactionGroups(_ jobs: [Job], size: Int) -> [[Job]] {
        var byProjection: [String: [Job]] = [:]
        var order: [String] = []
        for job in jobs {
            if byProjection[job.projection] == nil { order.append(job.projection) }
            byProjection[job.projection, default: []].append(job)
        }
        return order.flatMap { projection in
            let group = byProjection[projection]!
            return stride(from: 0, to: group.count, by: max(1, size)).map { Array(group[$0..<min($0 + max(1, size), group.count)]) }
        }
    }
}
