import EventFleetJobs
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
