import ArgumentParser
import EventFleetCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Keeps a set of fleet processes running (workers, a scheduler), restarting crashed ones with
/// backoff; on graceful shutdown sends them SIGTERM and waits for them to drain.
///
/// It prints one status line to standard output when a process starts, a table of all of them every
/// `statusInterval`, and how each one ended when they stop.
package final class FleetSupervisor: Service, Sendable {
    /// One supervised process.
    package struct Member: Sendable {
        /// How status lines and logs name it (`worker 1`, `scheduler`).
        package var name: String
        /// Its arguments (the subcommand first).
        package var arguments: [String]
        /// How long it may take to exit after SIGTERM before it is killed.
        package var stopTimeout: Duration

        package init(name: String, arguments: [String], stopTimeout: Duration) {
            self.name = name
            self.arguments = arguments
            self.stopTimeout = stopTimeout
        }

        /// Workers named `worker 1`, `worker 2`, ..., one per argument list.
        package static func workers(_ arguments: [[String]], stopTimeout: Duration) -> [Member] {
            arguments.enumerated().map { Member(name: "worker \($0.offset + 1)", arguments: $0.element, stopTimeout: stopTimeout) }
        }
    }

    struct Slot {
        var process: ChildProcess?
        var restarts = 0
        var nextStart = ContinuousClock.now
    }

    let executable: String
    let members: [Member]
    let environment: [String: String]
    let statusInterval: Duration
    let logger: Logger
    let slots: Mutex<[Slot]>
    /// Waits before restarting a process that exited: from half a second up to 30 s.
    static let restartPolicy = RetryPolicy(initialDelay: .milliseconds(500), maxDelay: .seconds(30))

    /// - Parameters:
    ///   - executable: The binary to start.
    ///   - members: The processes to keep running.
    ///   - environment: Their environment.
    ///   - statusInterval: How often to print their status.
    ///   - logger: Where restarts and failures to start are logged.
    package init(executable: String, members: [Member], environment: [String: String], statusInterval: Duration, logger: Logger) {
        self.executable = executable
        self.members = members
        self.environment = environment
        self.statusInterval = statusInterval
        self.logger = logger
        self.slots = Mutex(Array(repeating: Slot(), count: members.count))
    }

    public func run() async throws {
        // Each start prints its own line; the first table follows one interval later.
        var lastStatus = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            for index in members.indices { superviseSlot(index) }
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
        let member = members[index]
        let now = ContinuousClock.now
        let toStart: Bool = slots.withLock { slots in
            if let process = slots[index].process {
                guard let status = process.termination else { return false }
                slots[index].restarts += 1
                let delay = Self.restartPolicy.delay(beforeRetry: min(slots[index].restarts, 10))
                slots[index].nextStart = now + delay
                slots[index].process = nil
                logger.warning(
                    "\(member.name) exited; restarting",
                    metadata: ["eventfleet.process": "\(member.name)", "eventfleet.status": "\(status)", "eventfleet.restart_in": "\(delay)"]
                )
                return false
            }
            return now >= slots[index].nextStart
        }
        guard toStart else { return }
        do {
            let process = try ChildProcess(executable, arguments: member.arguments, environment: environment)
            let restarts = slots.withLock { slots in
                slots[index].process = process
                return slots[index].restarts
            }
            print("\(member.name) started, pid \(process.pid)\(restarts > 0 ? " (restart \(restarts))" : "")")
        } catch {
            logger.error("cannot start \(member.name)", metadata: ["eventfleet.process": "\(member.name)", "eventfleet.error": "\(error)"])
            slots.withLock { $0[index].nextStart = now + .seconds(5) }
        }
    }

    private func printStatus() {
        let lines = slots.withLock { slots in
            zip(members, slots).map { member, slot in
                let state = slot.process.map { $0.isRunning ? "running, pid \($0.pid)" : "exited" } ?? "starting"
                return "\(member.name): \(state), restarts \(slot.restarts)"
            }
        }
        print(lines.joined(separator: "\n"))
    }

    /// Forwards SIGTERM, waits for every process to drain, and kills what outlives its timeout.
    private func stopAll() async {
        let running = slots.withLock { slots in
            zip(members, slots).compactMap { member, slot in slot.process.map { (member, $0) } }
        }.filter { $0.1.isRunning }
        print("stopping \(running.count) processes (SIGTERM)")
        await withTaskGroup(of: Void.self) { group in
            for (member, process) in running {
                group.addTask {
                    process.signal(SIGTERM)
                    var termination = await process.waitForExit(timeout: member.stopTimeout)
                    if termination == nil {
                        self.logger.error(
                            "\(member.name) did not stop in time; killing it", metadata: ["eventfleet.process": "\(member.name)", "eventfleet.pid": "\(process.pid)"]
                        )
                        process.signal(SIGKILL)
                        termination = await process.waitForExit(timeout: .seconds(10))
                    }
                    print("\(member.name) stopped: \(termination.map(String.init(describing:)) ?? "still running after SIGKILL")")
                }
            }
        }
        print("all processes stopped")
    }
}
