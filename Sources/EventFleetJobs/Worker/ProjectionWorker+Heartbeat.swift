import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

extension ProjectionWorker {
    /// Heartbeats, with the jobs in flight, and flushes counts; re-registers when the scheduler
    /// declared this worker dead.
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
            let counts = takeCounts()
            do {
                let inFlight = state.withLock { Array($0.inFlight.keys) }
                let alive = try await queue.heartbeat(
                    worker: configuration.workerId, draining: Task.isShuttingDownGracefully, counts: counts, inFlight: inFlight
                )
                if !alive {
                    logger.error("declared dead by the scheduler (missed heartbeats); jobs in flight will fail their fence; registering again")
                    try await queue.register(registration)
                }
                state.withLock { $0.lastHeartbeat = .now }
            } catch {
                state.withLock { $0.counts.merge(counts) }
                logger.warning("heartbeat failed", metadata: ["eventfleet.error": "\(error)"])
            }
        }
    }
}
