import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// `eventfleet launch` supervising real workers, and a worker's Prometheus endpoint.
@Suite("Launch and metrics", .exclusive, .timeLimit(.minutes(3)))
struct LaunchAndMetricsTests {
    static func workerPids(_ schema: TestSchema) async throws -> Set<Int32> {
        var pids = Set<Int32>()
        for pid in try await schema.rows("SELECT pid FROM ef_workers", as: Int32.self) { pids.insert(pid) }
        return pids
    }

    /// Whether a process that is not this one's child has ended: gone, or a zombie that its new
    /// parent (init, in a container perhaps one that never reaps) has not reaped.
    static func hasExited(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        // "pid (comm) state ...": the state follows the last parenthesis (comm may hold spaces).
        guard let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// A TCP port that was free a moment ago.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                guard bind(fd, socketAddress, length) == 0, getsockname(fd, socketAddress, &length) == 0 else {
                    throw POSIXError(.EADDRINUSE)
                }
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A socket listening on a free loopback port, which the caller closes; and the port.
    static func listeningSocket() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        do {
            try withUnsafeMutablePointer(to: &address) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    guard bind(fd, socketAddress, length) == 0, listen(fd, 1) == 0, getsockname(fd, socketAddress, &length) == 0 else {
                        throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EADDRINUSE)
                    }
                }
            }
        } catch {
            close(fd)
            throw error
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Runs `body` while a task collects the lines `process` writes to standard output (started
    /// with `output: .lines`); returns all of them once the process closed it. When `body` throws,
    /// the process is killed, so that its output ends.
    static func collectingLines(
        of process: ChildProcess, _ body: (OutputLines) async throws -> Void
    ) async throws -> [String] {
        let lines = OutputLines()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while let line = await process.readLine() { lines.append(line) }
            }
            do {
                try await body(lines)
            } catch {
                process.signal(SIGKILL)
                throw error
            }
            try await group.waitForAll()
        }
        return lines.all
    }

    /// Lines of a process's output, as they arrive.
    final class OutputLines: Sendable {
        private let lines = Mutex<[String]>([])

        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
        func first(where predicate: (String) -> Bool) -> String? { lines.withLock { $0.first(where: predicate) } }
    }

    @Test("launch's status lines reach a pipe while it runs (before any SIGTERM), not only when it exits")
    func launchFlushesStatusLines() async throws {
        try await withCartsSchema { schema in
            let launcher = try ChildProcess(
                try builtProduct("eventfleet"),
                arguments: ["launch", "--workers", "1", "--status-interval", "3600", "--drain-timeout", "2"],
                environment: childEnvironment(url: schema.url), output: .lines, error: .discard
            )
            let lines = try await Self.collectingLines(of: launcher) { lines in
                try await waitUntil(timeout: .seconds(30), "launch printed that its worker started") {
                    lines.first { $0.hasPrefix("worker 1 started, pid ") } != nil
                }
                #expect(launcher.isRunning, "the line came while launch runs")
                // SIGTERM once the worker drains on it (a worker still starting up dies of it).
                let line = try #require(lines.first { $0.hasPrefix("worker 1 started, pid ") })
                let pid = try #require(Int32(line.dropFirst("worker 1 started, pid ".count)))
                try await waitUntil(timeout: .seconds(30), "the worker registered") { try await Self.workerPids(schema) == [pid] }
                launcher.signal(SIGTERM)
                #expect(try await launcher.exit(within: .seconds(30)) == .exited(0))
            }
            #expect(lines.first?.hasPrefix("launching 1 workers against ") == true, "\(lines)")
            #expect(lines.contains("worker 1 stopped: exited 0"), "\(lines)")
            #expect(lines.last == "all processes stopped", "\(lines)")
        }
    }

    @Test("launch --with-scheduler supervises a scheduler beside its workers: events get projected, and SIGTERM stops every process with 0")
    func launchWithScheduler() async throws {
        try await withCartsSchema { schema in
            let launcher = try ChildProcess(
                try builtProduct("eventfleet"),
                arguments: [
                    "launch", "--workers", "2", "--with-scheduler", "--status-interval", "1", "--heartbeat-interval-ms", "300",
                    "--poll-interval-ms", "200", "--drain-timeout", "2",
                ],
                environment: childEnvironment(url: schema.url), output: .lines, error: .capture
            )
            let lines = try await Self.collectingLines(of: launcher) { lines in
                try await waitUntil(timeout: .seconds(30), "launch started its scheduler") {
                    lines.first { $0.hasPrefix("scheduler started, pid ") } != nil
                }

                // Only a scheduler turns these events into jobs; the workers complete them.
                let streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 3)
                try await waitUntil(timeout: .seconds(60), "every cart is projected") {
                    try await cartRowsNotMatchingStreams(schema, streams: streams).isEmpty
                }
                try await waitUntil(timeout: .seconds(30), "the workers reported the completed jobs of both tenants") {
                    let status = try await FleetStatus.read(from: schema.store)
                    return Set(status.lanes.filter { $0.completedPerMinute > 0 }.map(\.partition)) == ["a", "b"]
                }
                let status = try await FleetStatus.read(from: schema.store)
                #expect(status.scheduler.leader != nil, "the scheduler leads")
                #expect(status.lanes.allSatisfy { $0.ready == 0 && $0.running == 0 && $0.dead == 0 })

                launcher.signal(SIGTERM)
                let exit = try await launcher.exit(within: .seconds(60))
                let log = await launcher.capturedError()
                #expect(exit == .exited(0), "\(log.suffix(3_000))")
            }
            for name in ["worker 1", "worker 2", "scheduler"] {
                #expect(lines.contains("\(name) stopped: exited 0"), "\(lines)")
            }
            let started = try #require(lines.first { $0.hasPrefix("scheduler started, pid ") })
            let scheduler = try #require(Int32(started.dropFirst("scheduler started, pid ".count)))
            #expect(Self.hasExited(scheduler), "the scheduler exited with launch")
            #expect(try await Self.workerPids(schema).isEmpty, "the workers deregistered")
        }
    }

    @Test("a worker or scheduler whose --metrics-port is taken exits 1 at once, naming the address; no worker registers", arguments: ["worker", "scheduler"])
    func metricsPortInUse(command: String) async throws {
        try await withCartsSchema { schema in
            let (fd, port) = try Self.listeningSocket()
            defer { close(fd) }
            let clock = ContinuousClock()
            let start = clock.now
            let process = try ChildProcess(
                try builtProduct("eventfleet"), arguments: [command, "--metrics-port", "\(port)"],
                environment: childEnvironment(url: schema.url), error: .capture
            )
            let status = try await process.exit(within: .seconds(20))
            let stderr = await process.capturedError()
            #expect(status == .exited(1), "\(stderr)")
            #expect(clock.now - start < .seconds(10), "promptly")
            #expect(
                stderr.contains("the metrics server cannot listen on 127.0.0.1:\(port): the address is in use (another process holds the port); pick another --metrics-port"),
                "\(stderr)"
            )
            #expect(try await Self.workerPids(schema).isEmpty, "it stopped before its service did anything")
        }
    }

    /// Starts `eventfleet launch` with two workers and returns once both registered, with their pids.
    static func launchTwoWorkers(_ schema: TestSchema, error: ChildProcess.Output) async throws -> (ChildProcess, Set<Int32>) {
        let launcher = try ChildProcess(
            try builtProduct("eventfleet"),
            arguments: ["launch", "--workers", "2", "--status-interval", "1", "--heartbeat-interval-ms", "300", "--drain-timeout", "2"],
            environment: childEnvironment(url: schema.url, ["LOG_LEVEL": "info"]), error: error
        )
        var workers = Set<Int32>()
        try await waitUntil(timeout: .seconds(30), "two workers registered") {
            workers = try await workerPids(schema)
            return workers.count == 2
        }
        return (launcher, workers)
    }

    @Test("launch restarts a worker killed with -9 and stops every worker on SIGTERM")
    func launchRestartsCrashedWorker() async throws {
        try await withCartsSchema { schema in
            let (launcher, first) = try await Self.launchTwoWorkers(schema, error: .capture)
            let victim = try #require(first.first)
            kill(victim, SIGKILL)
            var now = Set<Int32>()
            try await waitUntil(timeout: .seconds(30), "a new worker process took the killed one's place") {
                now = try await Self.workerPids(schema)
                return now.subtracting(first).count == 1
            }
            let replacement = try #require(now.subtracting(first).first)
            #expect(kill(replacement, 0) == 0, "the replacement is a live process")

            launcher.signal(SIGTERM)
            let status = try await launcher.exit(within: .seconds(30))
            let log = await launcher.capturedError()
            #expect(status == .exited(0), "\(log.suffix(3_000))")
            #expect(log.contains("restarting"), "\(log.suffix(3_000))")
            // Both live workers drained and deregistered; only the killed one's row is left (for rescue).
            #expect(try await Self.workerPids(schema) == [victim])
            #expect(kill(replacement, 0) != 0, "the workers exited with the launcher")
        }
    }

    @Test("workers drain and deregister when launch is killed with -9 (no SIGTERM to forward)")
    func workersStopWhenLauncherIsKilled() async throws {
        try await withCartsSchema { schema in
            let (launcher, workers) = try await Self.launchTwoWorkers(schema, error: .discard)
            launcher.signal(SIGKILL)
            #expect(try await launcher.exit(within: .seconds(10)) == .signalled(SIGKILL))
            // Each worker notices its parent is gone, drains and deregisters, and its process ends.
            try await waitUntil(timeout: .seconds(30), "both workers deregistered and exited") {
                try await Self.workerPids(schema).isEmpty && workers.allSatisfy(Self.hasExited)
            }
        }
    }

    @Test("a worker's /metrics shows the ready-job depth per tenant and lane")
    func metricsShowQueueDepth() async throws {
        try await withCartsSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(name: "carts", eventTypes: CartEvent.eventTypes)])
            // Tenant "a" is paused, so its jobs stay ready and the depth stays put.
            try await queue.setQuota(partition: "a", lane: .live, maxRunning: nil, weight: nil, paused: true)
            try await queue.enqueue((0..<3).map { JobRequest(projection: "carts", partition: "a", streamId: "s\($0)") })
            let port = try Self.freePort()
            let worker = try ChildProcess(
                try builtProduct("eventfleet"),
                arguments: ["worker", "--metrics-port", "\(port)", "--heartbeat-interval-ms", "200"],
                environment: childEnvironment(url: schema.url, ["LOG_LEVEL": "info"]), error: .capture
            )
            var body = ""
            try await waitUntil(timeout: .seconds(30), "the depth gauge is served") {
                let output = try await ChildProcess.run(
                    "/usr/bin/curl", arguments: ["-s", "http://127.0.0.1:\(port)/metrics"],
                    environment: ProcessInfo.processInfo.environment
                )
                body = output.stdout
                return body.split(separator: "\n").contains { line in
                    line.hasPrefix("eventfleet_jobs_ready{") && line.contains("partition=\"a\"") && line.contains("lane=\"live\"") && (line.hasSuffix(" 3") || line.hasSuffix(" 3.0"))
                }
            }
            #expect(body.contains("eventfleet_jobs_claimed_total"), "\(body)")
            worker.signal(SIGTERM)
            #expect(try await worker.exit() == .exited(0))
        }
    }

    @Test("a scheduler's /metrics and log name the partition an open append holds back, and the gauge reads 0 once it commits")
    func metricsShowHeldBackPartition() async throws {
        try await withCartsSchema { schema in
            // A committed event names the partition (ef_log_holds); the next append stays open.
            try await schema.store.appendToStream("earlier", messages: [message("Imported")], options: AppendOptions(partition: "tenant-slow"))
            let port = try Self.freePort()
            // The log goes to a file, read while the scheduler runs.
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("held-back-\(UUID().uuidString).log").path
            defer { try? FileManager.default.removeItem(atPath: log) }
            let scheduler = try ChildProcess(
                try builtProduct("eventfleet"),
                arguments: ["scheduler", "--metrics-port", "\(port)", "--held-back-warning-seconds", "0"],
                environment: childEnvironment(url: schema.url, ["LOG_LEVEL": "info"]), error: .file(log)
            )
            let connection = try await schema.connect()
            do {
                try await connection.query("BEGIN", logger: TestDatabase.logger)
                try await schema.store.appendToStream(
                    "slow-import", messages: [message("Imported")], options: AppendOptions(partition: "tenant-slow"), connection: connection
                )
                let gauge = { @Sendable (value: @escaping @Sendable (Double) -> Bool) async throws -> Bool in
                    let output = try await ChildProcess.run(
                        "/usr/bin/curl", arguments: ["-s", "http://127.0.0.1:\(port)/metrics"], environment: ProcessInfo.processInfo.environment
                    )
                    return output.stdout.split(separator: "\n").contains { line in
                        guard line.hasPrefix("eventfleet_log_held_back_seconds{"), line.contains("partition=\"tenant-slow\""),
                              let figure = line.split(separator: " ").last.flatMap({ Double($0) }) else { return false }
                        return value(figure)
                    }
                }
                try await waitUntil(timeout: .seconds(30), "the gauge shows tenant-slow held back") { try await gauge { $0 > 0 } }
                try await waitUntil(timeout: .seconds(30), "the scheduler warns about the hold") {
                    let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                    return text.contains("holds a partition of the log back") && text.contains("tenant-slow")
                }
                try await connection.query("COMMIT", logger: TestDatabase.logger)
                try await waitUntil(timeout: .seconds(30), "the gauge reads 0 once the append commits") { try await gauge { $0 == 0 } }
                scheduler.signal(SIGTERM)
                #expect(try await scheduler.exit() == .exited(0))
                try await connection.close()
            } catch {
                try? await connection.close()
                scheduler.signal(SIGKILL)
                throw error
            }
        }
    }
}
