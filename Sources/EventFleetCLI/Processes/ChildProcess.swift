import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process: spawned with `posix_spawn`, reaped by `waitpid` on a thread of its own, its
/// standard streams wired to `/dev/null`, a file, or pipes the parent reads or writes.
///
/// `launch` supervises workers with it, and the tests and tools (demo, chaos soak, benchmarks) start
/// their fleet processes with it. Foundation's `Process` reaps children from a SIGCHLD monitor that
/// was seen to miss exits when several children ran, leaving a zombie whose exit never arrived; and
/// every blocking call here (waiting, reading) runs on a thread of its own, never on Swift's
/// cooperative pool or Dispatch, which share the machine's few threads.
package final class ChildProcess: Sendable {
    /// How a process ended.
    package enum Termination: Sendable, Hashable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        /// The code a shell reports: the exit status, or 128 + the signal.
        package var shellStatus: Int32 {
            switch self {
            case .exited(let status): status
            case .signalled(let signal): 128 + signal
            }
        }

        package var description: String {
            switch self {
            case .exited(let status): "exited \(status)"
            case .signalled(let signal): "killed by signal \(signal)"
            }
        }
    }

    /// Where a child's standard output or error goes.
    package enum Output: Sendable {
        /// Nowhere.
        case discard
        /// Appended to a file (created if missing).
        case file(String)
        /// Into a pipe kept whole, for ``capturedOutput()``/``capturedError()`` once it closed.
        case capture
        /// Into a pipe read line by line with ``readLine()`` (standard output only).
        case lines
        /// This process's own.
        case inherit
    }

    package let pid: pid_t
    package let executable: String

    /// The environment variable that names the starting process to its child, so that a fleet
    /// process drains when its parent is gone (`ParentWatch`).
    package static let parentVariable = "EVENTFLEET_PARENT_PID"

    /// The path of this process's own executable, for starting more processes of it (a fleet
    /// binary starts its workers, a tool its schedulers and workers).
    package static var currentExecutable: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
    }
    private let state = Mutex(State())
    private let input: Int32?

    private struct State {
        var termination: Termination?
        var exitWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        var captured: [Int32: Data] = [:]
        var captureWaiters: [Int32: [CheckedContinuation<Data, Never>]] = [:]
        var lines: [String] = []
        var linesEnded = false
        var lineWaiter: CheckedContinuation<String?, Never>?
    }

    /// Starts `executable` with `arguments`.
    ///
    /// - Parameters:
    ///   - writesInput: Whether the parent talks to its standard input (``send(_:)``); otherwise it
    ///     reads `/dev/null`.
    ///   - descriptors: Further descriptors of this process that the child gets, each under its key's
    ///     number: `[3: read, 4: write]` for chromium's `--remote-debugging-pipe`. The caller keeps
    ///     its own and closes them once the child has started.
    /// - Throws: `POSIXError` when the process cannot be started.
    package init(
        _ executable: String, arguments: [String] = [], environment: [String: String] = ProcessInfo.processInfo.environment,
        writesInput: Bool = false, output: Output = .discard, error: Output = .inherit, descriptors: [Int32: Int32] = [:]
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // The child's ends of the pipes, closed here once it has them.
        var childEnds: [Int32] = []
        var inputWrite: Int32?
        var readers: [(fd: Int32, read: Int32, lines: Bool)] = []
        if writesInput {
            let (read, write) = try Self.pipe()
            posix_spawn_file_actions_adddup2(&actions, read, 0)
            childEnds.append(read)
            inputWrite = write
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        for (fd, mode) in [(Int32(1), output), (Int32(2), error)] {
            switch mode {
            case .discard: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0)
            case .file(let path): posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            case .inherit: break
            case .capture, .lines:
                let (read, write) = try Self.pipe()
                posix_spawn_file_actions_adddup2(&actions, write, fd)
                childEnds.append(write)
                if case .lines = mode { readers.append((fd, read, true)) } else { readers.append((fd, read, false)) }
            }
        }
        // Each handed on from a copy above every target number, so that no dup2 overwrites the
        // source of a later one (a caller's descriptor may well be 3 or 4).
        let lowestCopy = (descriptors.keys.max() ?? 2) + 1
        for (target, source) in descriptors {
            let copy = fcntl(source, F_DUPFD_CLOEXEC, lowestCopy)
            guard copy >= 0 else {
                let code = POSIXErrorCode(rawValue: errno) ?? .EBADF
                (childEnds + [inputWrite].compactMap { $0 } + readers.map(\.read)).forEach { close($0) }
                throw POSIXError(code)
            }
            childEnds.append(copy)
            posix_spawn_file_actions_adddup2(&actions, copy, target)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        var environment = environment
        environment[Self.parentVariable] = String(getpid())
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        childEnds.forEach { close($0) }
        guard spawned == 0 else {
            if let inputWrite { close(inputWrite) }
            readers.forEach { close($0.read) }
            throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EINVAL)
        }
        self.pid = pid
        self.executable = executable
        self.input = inputWrite
        for reader in readers {
            if reader.lines { readLines(from: reader.read) } else { capture(reader.read, as: reader.fd) }
        }
        reap()
    }

    deinit {
        if let input { close(input) }
    }

    /// A pipe whose ends are not inherited by children (the child gets its end by `dup2`, which
    /// clears the flag): a write end left open in another child would keep a reader from its EOF.
    private static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard linuxPipe2(&fds, O_CLOEXEC) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return (fds[0], fds[1])
    }

    // MARK: Exit

    /// How it ended; `nil` while it runs.
    package var termination: Termination? { state.withLock { $0.termination } }
    package var isRunning: Bool { termination == nil }

    /// Sends `signal` while it runs.
    package func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits until it ends; `nil` when it still runs after `timeout`.
    @discardableResult
    package func waitForExit(timeout: Duration) async -> Termination? {
        await withTaskGroup(of: Termination?.self) { group in
            group.addTask { await self.exited() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? termination
        }
    }

    /// SIGCONT and SIGTERM, then SIGKILL if it still runs after `grace`; returns how it ended.
    @discardableResult
    package func stop(grace: Duration) async -> Termination? {
        signal(SIGCONT)
        signal(SIGTERM)
        if let termination = await waitForExit(timeout: grace) { return termination }
        signal(SIGKILL)
        return await waitForExit(timeout: .seconds(10))
    }

    /// Waits for the end, or for cancellation (`nil`).
    private func exited() async -> Termination? {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let done = state.withLock { state -> Bool in
                    guard state.termination == nil, !Task.isCancelled else { return true }
                    state.exitWaiters[id] = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.exitWaiters.removeValue(forKey: id) }?.resume()
        }
        return termination
    }

    private func reap() {
        let pid = self.pid
        Thread.detachNewThread { [self] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            let termination: Termination = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
            let waiters = state.withLock { state in
                state.termination = termination
                defer { state.exitWaiters = [:] }
                return Array(state.exitWaiters.values)
            }
            waiters.forEach { $0.resume() }
        }
    }

    // MARK: Standard streams

    /// Writes one line to its standard input (started with `writesInput`).
    package func send(_ line: String) throws {
        guard let input else { return }
        let bytes = Array((line + "\n").utf8)
        var written = 0
        while written < bytes.count {
            let result = bytes[written...].withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
            guard result > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EPIPE) }
            written += result
        }
    }

    /// The next line of its standard output (started with `output: .lines`); `nil` once it closed.
    package func readLine() async -> String? {
        await withCheckedContinuation { continuation in
            let line = state.withLock { state -> String?? in
                if !state.lines.isEmpty { return .some(state.lines.removeFirst()) }
                if state.linesEnded { return .some(nil) }
                state.lineWaiter = continuation
                return .none
            }
            if let line { continuation.resume(returning: line) }
        }
    }

    /// Everything it wrote to standard output (started with `output: .capture`), once it closed it.
    package func capturedOutput() async -> String { await captured(1) }

    /// Everything it wrote to standard error (started with `error: .capture`), once it closed it.
    package func capturedError() async -> String { await captured(2) }

    private func captured(_ fd: Int32) async -> String {
        let data = await withCheckedContinuation { continuation in
            let data = state.withLock { state -> Data? in
                if let data = state.captured[fd] { return data }
                state.captureWaiters[fd, default: []].append(continuation)
                return nil
            }
            if let data { continuation.resume(returning: data) }
        }
        return String(decoding: data, as: UTF8.self)
    }

    private func capture(_ read: Int32, as fd: Int32) {
        Thread.detachNewThread { [self] in
            var data = Data()
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(read, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                data.append(contentsOf: buffer[0..<count])
            }
            close(read)
            let waiters = state.withLock { state in
                state.captured[fd] = data
                defer { state.captureWaiters[fd] = nil }
                return state.captureWaiters[fd] ?? []
            }
            waiters.forEach { $0.resume(returning: data) }
        }
    }

    private func readLines(from read: Int32) {
        Thread.detachNewThread { [self] in
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4_096)
            func deliver(_ line: String?) {
                let waiter = state.withLock { state -> CheckedContinuation<String?, Never>? in
                    if let waiter = state.lineWaiter {
                        state.lineWaiter = nil
                        if line == nil { state.linesEnded = true }
                        return waiter
                    }
                    if let line { state.lines.append(line) } else { state.linesEnded = true }
                    return nil
                }
                waiter?.resume(returning: line)
            }
            while true {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(read, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                for byte in buffer[0..<count] {
                    if byte == UInt8(ascii: "\n") {
                        deliver(String(decoding: pending, as: UTF8.self))
                        pending = []
                    } else {
                        pending.append(byte)
                    }
                }
            }
            close(read)
            if !pending.isEmpty { deliver(String(decoding: pending, as: UTF8.self)) }
            deliver(nil)
        }
    }
}

/// `pipe2(2)`, which Glibc's Swift module does not declare: a pipe created with its flags at once,
/// so that no child spawned in between inherits it.
@_silgen_name("pipe2")
private func linuxPipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

extension ChildProcess {
    /// What a process that ran to its end left behind.
    package struct Result: Sendable {
        package var termination: Termination
        package var stdout: String
        package var stderr: String

        /// The status a shell reports (see ``Termination/shellStatus``).
        package var status: Int32 { termination.shellStatus }
    }

    /// Runs `executable` to its end, capturing its standard output and error.
    package static func run(
        _ executable: String, arguments: [String] = [], environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> Result {
        let child = try ChildProcess(executable, arguments: arguments, environment: environment, output: .capture, error: .capture)
        let output = await child.capturedOutput()
        let error = await child.capturedError()
        // The pipes closed: it has ended or is about to; its exit is reaped on its own thread.
        let termination = await child.waitForExit(timeout: .seconds(3600)) ?? .signalled(0)
        return Result(termination: termination, stdout: output, stderr: error)
    }

    /// Runs `command` with `/bin/sh -c` to its end; its output goes to `log`, so that a daemon it
    /// starts (`pg_ctl restart`) cannot hold a pipe of ours open.
    package static func runShell(_ command: String, log: String) async throws -> Termination {
        let child = try ChildProcess("/bin/sh", arguments: ["-c", command], output: .file(log), error: .file(log))
        return await child.waitForExit(timeout: .seconds(3600)) ?? .signalled(0)
    }
}
