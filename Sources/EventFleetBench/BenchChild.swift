import Foundation
import Synchronization

/// A process the bench starts from its own executable (so a release bench runs release workers),
/// with the bench schema's `DATABASE_URL`, talking over its standard input and output.
final class BenchChild: Sendable {
    private let process: Mutex<Process>
    private let input: FileHandle?
    private let output: FileHandle?
    let pid: Int32

    /// Starts `eventfleet ARGUMENTS` with `DATABASE_URL` set to `databaseURL`.
    ///
    /// - Parameter interactive: Whether the bench talks to it over standard input and output;
    ///   otherwise both go to `/dev/null` (its log still reaches standard error).
    init(arguments: [String], databaseURL: String, interactive: Bool) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = databaseURL
        process.environment = environment
        let input = interactive ? Pipe() : nil
        let output = interactive ? Pipe() : nil
        if let input { process.standardInput = input } else { process.standardInput = FileHandle.nullDevice }
        if let output { process.standardOutput = output } else { process.standardOutput = FileHandle.nullDevice }
        try process.run()
        self.input = input?.fileHandleForWriting
        self.output = output?.fileHandleForReading
        self.pid = process.processIdentifier
        self.process = Mutex(process)
        BenchInterruption.started(self)
    }

    var isRunning: Bool { process.withLock { $0.isRunning } }

    /// Sends one line to the child's standard input.
    func send(_ line: String) throws {
        try input?.write(contentsOf: Data((line + "\n").utf8))
    }

    /// The child's next line of output; `nil` when it closed its output.
    func readLine() async -> String? {
        guard let output else { return nil }
        return await BlockingIO.readLine(from: output)
    }

    /// The peak resident set size so far (`VmHWM`), in bytes.
    func peakResidentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
            return kilobytes * 1_024
        }
        return nil
    }

    /// Sends SIGTERM and waits for the exit, killing the child after `timeout`.
    func stop(timeout: Duration = .seconds(15)) async {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if isRunning { kill(pid, SIGKILL) }
        BenchInterruption.ended(self)
    }

    /// Waits for the child to exit on its own.
    func waitForExit() async {
        while isRunning {
            try? await Task.sleep(for: .milliseconds(20))
        }
        BenchInterruption.ended(self)
    }
}

/// Blocking reads off the cooperative thread pool, so a waiting read does not hold one of its few
/// threads.
enum BlockingIO {
    static func readLine(from handle: FileHandle) async -> String? {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var bytes: [UInt8] = []
                while true {
                    let data = handle.readData(ofLength: 1)
                    guard let byte = data.first else {
                        continuation.resume(returning: bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self))
                        return
                    }
                    if byte == UInt8(ascii: "\n") {
                        continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
                        return
                    }
                    bytes.append(byte)
                }
            }
        }
    }

    /// A line of this process's standard input.
    static func readStandardInputLine() async -> String? {
        await readLine(from: FileHandle.standardInput)
    }
}
