import Dispatch
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
        var children: [Int32: BenchChild] = [:]
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

    static func started(_ child: BenchChild) {
        registry.withLock { $0.children[child.pid] = child }
    }

    static func ended(_ child: BenchChild) {
        registry.withLock { $0.children[child.pid] = nil }
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
                group.addTask { await child.stop(timeout: .seconds(10)) }
            }
        }
        var quiet = logger
        quiet.logLevel = .critical
        for (schema, baseURL) in schemas {
            do {
                let client = PostgresClient(configuration: try DatabaseConfiguration(url: baseURL).clientConfiguration(), backgroundLogger: quiet)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { await client.run() }
                    defer { group.cancelAll() }
                    for try await _ in try await client.query("DROP SCHEMA IF EXISTS \(unescaped: "\"\(schema)\"") CASCADE", logger: quiet) {}
                }
            } catch {
                FileHandle.standardError.write(Data("could not drop the bench schema \(schema); drop it by hand: \(error)\n".utf8))
            }
        }
    }
}
