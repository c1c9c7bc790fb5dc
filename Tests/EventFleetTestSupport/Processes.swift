import EventFleetCLI
import Foundation

/// An executable SwiftPM built beside the test bundle (`eventfleet`, the tools, the fixtures).
package func builtProduct(_ name: String) throws -> String {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    while directory.path != "/" {
        let candidate = directory.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
        directory.deleteLastPathComponent()
    }
    throw TimedOut(description: "\(name) is not built; run the tests with scripts/test")
}

/// This process's environment with `DATABASE_URL` and `extra` set.
package func childEnvironment(url: String, _ extra: [String: String] = [:]) -> [String: String] {
    var environment = ProcessInfo.processInfo.environment
    environment["DATABASE_URL"] = url
    environment.merge(extra) { $1 }
    return environment
}

extension ChildProcess {
    /// Waits for the end and returns how it ended.
    ///
    /// - Throws: ``TimedOut`` when it still runs after `timeout`.
    package func exit(within timeout: Duration = .seconds(30)) async throws -> Termination {
        guard let termination = await waitForExit(timeout: timeout) else {
            throw TimedOut(description: "process \(pid) (\(executable)) still running after \(timeout)")
        }
        return termination
    }
}
