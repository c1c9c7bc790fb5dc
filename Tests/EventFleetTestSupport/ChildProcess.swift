import Dispatch
import Foundation

/// What a finished child process left behind.
public struct ProcessOutput: Sendable {
    /// The exit status, or the signal number when it was killed.
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs an executable to its end.
///
/// The blocking reads and the wait happen on threads of their own. On Linux both Swift's
/// cooperative pool and Dispatch's global queues run on the same few threads (two here), so a
/// blocking call on either would stall every test in the process.
public func runProcess(_ executable: URL, arguments: [String] = [], environment: [String: String]) async throws -> ProcessOutput {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            process.environment = environment
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            do {
                try process.run()
            } catch {
                continuation.resume(throwing: error)
                return
            }
            // Drain both pipes at once so a chatty child never blocks on a full pipe.
            let stdout = DataBox()
            let reading = DispatchGroup()
            reading.enter()
            Thread.detachNewThread {
                stdout.data = out.fileHandleForReading.readDataToEndOfFile()
                reading.leave()
            }
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            reading.wait()
            process.waitUntilExit()
            continuation.resume(
                returning: ProcessOutput(
                    status: process.terminationStatus,
                    stdout: String(decoding: stdout.data, as: UTF8.self),
                    stderr: String(decoding: stderr, as: UTF8.self)
                )
            )
        }
    }
}

/// An executable SwiftPM built beside the test bundle (`eventfleet`, the fixtures).
public func builtProduct(_ name: String) throws -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    while directory.path != "/" {
        let candidate = directory.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory.deleteLastPathComponent()
    }
    throw TimedOut(description: "\(name) is not built; run the tests with scripts/test")
}

/// This process's environment with `DATABASE_URL` and `extra` set.
public func childEnvironment(url: String, _ extra: [String: String] = [:]) -> [String: String] {
    var environment = ProcessInfo.processInfo.environment
    environment["DATABASE_URL"] = url
    environment.merge(extra) { $1 }
    return environment
}

/// Written by one reader thread, read after `DispatchGroup.wait()`, which orders the two.
private final class DataBox: @unchecked Sendable {
    var data = Data()
}

/// A child process that keeps running while the test works: signal it, wait for it.
public final class RunningProcess: Sendable {
    private let process: Process
    private let exited: AsyncStream<Int32>
    private let output: AsyncStream<String>

    /// Starts `executable`; its standard error is kept for ``stderr()``.
    public init(_ executable: URL, arguments: [String], environment: [String: String]) throws {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let pipe = Pipe()
        process.standardError = pipe
        let (stream, continuation) = AsyncStream<Int32>.makeStream(bufferingPolicy: .bufferingNewest(1))
        process.terminationHandler = { finished in
            continuation.yield(finished.terminationStatus)
            continuation.finish()
        }
        let (output, outputContinuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.process = process
        self.exited = stream
        self.output = output
        try process.run()
        // Drain standard error from the start, so a chatty child never blocks on a full pipe.
        Thread.detachNewThread {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            outputContinuation.yield(String(decoding: data, as: UTF8.self))
            outputContinuation.finish()
        }
    }

    public var pid: Int32 { process.processIdentifier }

    public func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the exit and returns the status (the signal number when killed).
    ///
    /// - Throws: ``TimedOut`` when it is still running after `timeout`.
    public func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        let exited = self.exited
        return try await withThrowingTaskGroup(of: Int32?.self) { group in
            group.addTask {
                for await status in exited { return status }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let status = try await group.next() ?? nil else {
                throw TimedOut(description: "process \(self.pid) still running after \(timeout)")
            }
            return status
        }
    }

    /// Everything the process wrote to standard error; call after it exited.
    public func stderr() async -> String {
        for await text in output { return text }
        return ""
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Runs `command` with `/bin/sh -c` and waits for it, without Foundation's `Process`.
///
/// Foundation reaps its children from a SIGCHLD monitor; with other children running (fleet
/// processes) it was seen to miss the exit of a short `sh` that started a daemon (`pg_ctl restart`),
/// leaving `waitUntilExit()` hanging on a zombie. Here the child is spawned with `posix_spawn` and
/// reaped with `waitpid` on a thread of its own. Output goes to a temporary file, so a daemon the
/// command starts cannot hold a pipe of ours open.
public func runShell(_ command: String) async throws -> ProcessOutput {
    let logURL = FileManager.default.temporaryDirectory.appendingPathComponent("eventfleet-shell-\(UUID().uuidString).log")
    defer { try? FileManager.default.removeItem(at: logURL) }
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            var pid: pid_t = 0
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, logURL.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(command), nil]
            defer { argv.forEach { free($0) } }
            let spawned = posix_spawn(&pid, "/bin/sh", &actions, nil, argv, environ)
            guard spawned == 0 else {
                continuation.resume(throwing: POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EINVAL))
                return
            }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            // Exit code when it exited, else the signal that killed it (as Foundation reports them).
            let exited = status & 0x7f == 0
            continuation.resume(returning: exited ? (status >> 8) & 0xff : status & 0x7f)
        }
    }
    let output = (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
    return ProcessOutput(status: status, stdout: output, stderr: output)
}
