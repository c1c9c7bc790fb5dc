import ServiceLifecycle

/// Runs `services` in a service group for the duration of `body`, then shuts them down gracefully
/// (consumers give their leases up, workers drain and deregister) and waits for them.
package func withServices(_ services: [any Service], _ body: @Sendable () async throws -> Void) async throws {
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: TestDatabase.logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            try await body()
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}
