import Dispatch
import EventFleetCLI
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Cleans up after an interrupted run: on SIGINT or SIGTERM the bench stops the fleet processes it
/// started and drops the schemas it created, then exits (130 or 143).
///
/// Without this, a bench stopped with Ctrl-C or `timeout` left its scheduler and worker processes
/// running, separate processes that nothing else stops, still working in a schema nobody dropped.
enum BenchInterruption {
    private struct Registry {
        var children: [Int32: ChildProcess] = [:]
        /// Schema name → the server's base URL.
        var schemas: [String: String] = [:]
        var interrupted = false
    }

    private static let registry = Mutex(Registry())
    /// The signal sources, kept for the life of the process; written once, by `install`, at the
    /// start of the run, before any other task exists.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    /// Handles SIGINT and SIGTERM from now on.
    static func install(logger: Logger) {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                let first = registry.withLock { registry in
                    defer { registry.interrupted = true }
                    return !registry.interrupted
                }
                guard first else { return }
                FileHandle.standardError.write(Data("\ninterrupted: stopping the bench's fleet processes and dropping its schemas\n".utf8))
                Task {
                    await cleanUp(logger: logger)
                    exit(128 + signalNumber)
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// After an interruption, keeps the run from ending (with the error its stopped processes caused)
    /// before the cleanup has finished and exits.
    static func holdIfInterrupted() async {
        while registry.withLock({ $0.interrupted }) {
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Starts `eventfleet-bench ARGUMENTS` (this executable, so a release bench runs release
    /// workers) with `DATABASE_URL` set to `databaseURL`; it is stopped if the run is interrupted.
    ///
    /// - Parameter interactive: Whether the bench talks to it over its standard input and output.
    static func start(_ arguments: [String], databaseURL: String, interactive: Bool = false) throws -> ChildProcess {
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = databaseURL
        let child = try ChildProcess(
            ChildProcess.currentExecutable, arguments: arguments, environment: environment,
            writesInput: interactive, output: interactive ? .lines : .discard
        )
        registry.withLock { $0.children[child.pid] = child }
        return child
    }

    /// Sends SIGTERM and waits for the exit, killing the child after `timeout`.
    static func stop(_ child: ChildProcess, timeout: Duration = .seconds(15)) async {
        await child.stop(grace: timeout)
        ended(child)
    }

    /// Waits for the child to exit on its own.
    static func waitForExit(_ child: ChildProcess) async {
        await child.waitForExit(timeout: .seconds(3_600))
        ended(child)
    }

    private static func ended(_ child: ChildProcess) {
        registry.withLock { $0.children[child.pid] = nil }
    }

    /// The peak resident set size of a child so far (`VmHWM`), in bytes.
    static func peakResidentBytes(_ child: ChildProcess) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
            return kilobytes * 1_024
        }
        return nil
    }

    static func created(schema: String, baseURL: String) {
        registry.withLock { $0.schemas[schema] = baseURL }
    }

    static func dropped(schema: String) {
        registry.withLock { $0.schemas[schema] = nil }
    }

    private static func cleanUp(logger: Logger) async {
        let (children, schemas) = registry.withLock { (Array($0.children.values), $0.schemas) }
        await withTaskGroup(of: Void.self) { group in
            for child in children {
                group.addTask { await child.stop(grace: .seconds(10)) }
            }
        }
        var quiet = logger
        quiet.logLevel = .critical
        for (schema, baseURL) in schemas {
            do {
                try await SchemaSandbox.drop(schema, baseURL: baseURL, logger: quiet)
            } catch {
                FileHandle.standardError.write(Data("could not drop the bench schema \(schema); drop it by hand: \(error)\n".utf8))
            }
        }
    }
}
