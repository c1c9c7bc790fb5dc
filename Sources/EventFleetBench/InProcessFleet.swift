import EventFleetJobs
import Foundation
import Logging
import ServiceLifecycle

/// Runs a fleet's services (its scheduler among them) in the bench process: starts them, waits until
/// the scheduler has caught up with the log, runs `body`, then shuts the fleet down gracefully and
/// waits for it to stop, also when `body` throws.
func withInProcessFleet<T: Sendable>(
    scheduler: FleetScheduler, services: [ServiceGroupConfiguration.ServiceConfiguration], logger: Logger,
    _ body: @Sendable () async throws -> T
) async throws -> T {
    let fleet = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: logger))
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await fleet.run()
            return nil
        }
        do {
            try await scheduler.whenCaughtUp(timeout: .seconds(60))
            let result = try await body()
            await fleet.triggerGracefulShutdown()
            for try await _ in group {}
            return result
        } catch {
            await fleet.triggerGracefulShutdown()
            throw error
        }
    }
}

/// Runs `body` with `claimers` registered as live-lane workers and a scheduler running, as in a
/// fleet (its leader vacuums the job table as jobs finish). The claimers never heartbeat, so the
/// leader's heartbeat timeout is an hour: it must not take them for dead meanwhile.
func withClaimersAndScheduler<T: Sendable>(
    _ database: BenchDatabase, claimers: [String], _ body: @Sendable () async throws -> T
) async throws -> T {
    var quiet = database.logger
    quiet.logLevel = .error
    var configuration = FleetScheduler.Configuration()
    configuration.heartbeatTimeout = .seconds(3_600)
    let queue = JobQueue(store: database.store, logger: database.logger)
    for worker in claimers {
        try await queue.register(WorkerRegistration(
            id: worker, host: ProcessInfo.processInfo.hostName, pid: ProcessInfo.processInfo.processIdentifier,
            lanes: [.live], partitions: nil, slots: 100
        ))
    }
    let scheduler = FleetScheduler(configuration: configuration, store: database.store, logger: quiet)
    return try await withInProcessFleet(scheduler: scheduler, services: [.init(service: scheduler)], logger: quiet, body)
}
