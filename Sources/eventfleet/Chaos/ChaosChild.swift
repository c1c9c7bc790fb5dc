import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process of the soak: spawned with `posix_spawn`, its standard error appended to a log
/// file, reaped by `waitpid` on a thread of its own (Foundation's `Process` reaps from a SIGCHLD
/// monitor that was seen to miss exits).
final class ChaosChild: Sendable {
    let name: String
    let pid: pid_t
    private let status = ExitStatus()

    /// Starts `executable` with `arguments`; `log` receives its standard error.
    init(name: String, executable: String, arguments: [String], environment: [String: String], log: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else { throw ChaosError.spawnFailed(name: name, errno: spawned) }
        self.name = name
        self.pid = pid
        let status = self.status
        let child = pid
        Thread.detachNewThread {
            var raw: Int32 = 0
            while waitpid(child, &raw, 0) == -1 && errno == EINTR {}
            // The exit code, or 128 + the signal that ended it (as a shell reports it).
            let code = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            status.value.withLock { $0 = code }
        }
    }

    /// The exit code (128 + signal when killed), `nil` while it runs.
    var exitCode: Int32? { status.value.withLock { $0 } }
    var isRunning: Bool { exitCode == nil }

    func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits for the exit; `nil` when it is still running after `timeout`.
    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while exitCode == nil, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        return exitCode
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit code.
    @discardableResult
    func stop(grace: Duration) async -> Int32 {
        signal(SIGCONT)
        signal(SIGTERM)
        if let code = await waitForExit(timeout: grace) { return code }
        signal(SIGKILL)
        return await waitForExit(timeout: .seconds(10)) ?? -1
    }
}

/// The exit code of a child once it is known.
private final class ExitStatus: Sendable {
    let value = Mutex<Int32?>(nil)
}

/// Runs `command` with `/bin/sh -c`, its output appended to `log`; returns the exit code.
func runShellCommand(_ command: String, log: String) async throws -> Int32 {
    let child = try ChaosChild(name: "sh", executable: "/bin/sh", arguments: ["-c", command], environment: ProcessInfo.processInfo.environment, log: log)
    return await child.waitForExit(timeout: .seconds(120)) ?? -1
}

/// Why the soak could not run.
enum ChaosError: Error, CustomStringConvertible {
    case spawnFailed(name: String, errno: Int32)
    case setupFailed(String)

    var description: String {
        switch self {
        case .spawnFailed(let name, let errno): "could not start \(name): \(String(cString: strerror(errno)))"
        case .setupFailed(let reason): "the soak could not be set up: \(reason)"
        }
    }
}
