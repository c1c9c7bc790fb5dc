import ArgumentParser
import EventFleetCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Keeps N child processes running (restarting crashed ones with backoff); on graceful shutdown
/// sends them SIGTERM and waits for them to drain.
package final class WorkerSupervisor: Service, Sendable {
    struct Slot {
        var process: ChildProcess?
        var restarts = 0
        var nextStart = ContinuousClock.now
    }

    let executable: String
    let arguments: [[String]]
    let environment: [String: String]
    let stopTimeout: Duration
    let statusInterval: Duration
    let logger: Logger
    let slots: Mutex<[Slot]>
    /// Waits before restarting a worker that exited: from half a second up to 30 s.
    static let restartPolicy = RetryPolicy(initialDelay: .milliseconds(500), maxDelay: .seconds(30))

    /// - Parameters:
    ///   - executable: The binary to start.
    ///   - arguments: One argument list per process.
    ///   - environment: Their environment.
    ///   - stopTimeout: How long they may take to exit after SIGTERM.
    ///   - statusInterval: How often to print their status.
    package init(executable: String, arguments: [[String]], environment: [String: String], stopTimeout: Duration, statusInterval: Duration, logger: Logger) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.stopTimeout = stopTimeout
        self.statusInterval = statusInterval
        self.logger = logger
        self.slots = Mutex(Array(repeating: Slot(), count: arguments.count))
    }

    public func run() async throws {
        var lastStatus = ContinuousClock.now - statusInterval
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            for index in arguments.indices { superviseSlot(index) }
            if ContinuousClock.now - lastStatus >= statusInterval {
                printStatus()
                lastStatus = .now
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(200)) }
        }
        await stopAll()
    }

    /// Starts the slot's process when it is not running; a crashed one comes back with backoff.
    private func superviseSlot(_ index: Int) {
        let now = ContinuousClock.now
        let toStart: Bool = slots.withLock { slots in
            if let process = slots[index].process {
                guard let status = process.termination else { return false }
                slots[index].restarts += 1
                let delay = Self.restartPolicy.delay(beforeRetry: min(slots[index].restarts, 10))
                slots[index].nextStart = now + delay
                slots[index].process = nil
                logger.warning("worker exited; restarting", metadata: ["eventfleet.worker_index": "\(index)", "eventfleet.status": "\(status)", "eventfleet.restart_in": "\(delay)"])
                return false
            }
            return now >= slots[index].nextStart
        }
        guard toStart else { return }
        do {
            let process = try ChildProcess(executable, arguments: arguments[index], environment: environment)
            slots.withLock { $0[index].process = process }
        } catch {
            logger.error("cannot start a worker", metadata: ["eventfleet.error": "\(error)"])
            slots.withLock { $0[index].nextStart = now + .seconds(5) }
        }
    }

    private func printStatus() {
        let lines = slots.withLock { slots in
            slots.enumerated().map { index, slot in
                let state = slot.process.map { $0.isRunning ? "running, pid \($0.pid)" : "exited" } ?? "starting"
                return "worker \(index + 1): \(state), restarts \(slot.restarts)"
            }
        }
        print(lines.joined(separator: "\n"))
    }

    /// Forwards SIGTERM, waits for every worker to drain, and kills what outlives the timeout.
    private func stopAll() async {
        let processes = slots.withLock { $0.compactMap(\.process) }.filter(\.isRunning)
        print("stopping \(processes.count) workers (SIGTERM)")
        await withTaskGroup(of: Void.self) { group in
            for process in processes {
                group.addTask {
                    process.signal(SIGTERM)
                    guard await process.waitForExit(timeout: self.stopTimeout) == nil else { return }
                    self.logger.error("worker did not stop in time; killing it", metadata: ["eventfleet.pid": "\(process.pid)"])
                    process.signal(SIGKILL)
                    await process.waitForExit(timeout: .seconds(10))
                }
            }
        }
        print("all workers stopped")
    }
}
