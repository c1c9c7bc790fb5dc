import EventFleetCLI
import Foundation

/// Restarting the test database the hard way (`pg_ctl restart -m immediate`), for the tests of what
/// survives it. `scripts/test` sets `EVENTFLEET_TEST_RESTART_DATABASE` when it runs the checkout's
/// own cluster; on a shared database such a test cannot restart the server and does not run.
package enum DatabaseRestart {
    /// The database could not be restarted.
    package struct Failed: Error, CustomStringConvertible {
        package var description: String
    }

    /// The command that restarts the database, `nil` where none may.
    package static let command = ProcessInfo.processInfo.environment["EVENTFLEET_TEST_RESTART_DATABASE"]

    /// Restarts the database and returns once the command has (the server then accepts connections).
    package static func restart() async throws {
        guard let command else { throw DatabaseRestart.Failed(description: "no EVENTFLEET_TEST_RESTART_DATABASE: the database cannot be restarted here") }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("eventfleet-restart-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let termination = try await ChildProcess.runShell(command, log: log)
        guard termination == .exited(0) else {
            throw DatabaseRestart.Failed(description: "restarting the database failed: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
    }
}
