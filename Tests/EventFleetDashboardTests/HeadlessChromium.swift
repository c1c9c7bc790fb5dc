import EventFleetCLI
import EventFleetCore
import EventFleetTestSupport
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What went wrong finding, starting or driving chromium.
enum DevToolsError: Error, CustomStringConvertible {
    /// No browser was found; says how to get one.
    case browserMissing(String)
    /// chromium answered `method` with an error.
    case failed(method: String, code: Int, message: String)
    /// chromium did not answer `method` in time.
    case timedOut(method: String, after: Duration)
    /// chromium closed its end of the pipe (it exited) before it answered `method`; the end of its log.
    case closed(method: String, log: String)
    /// The request for `method` could not be written to the pipe.
    case writeFailed(method: String, errno: Int32)
    /// chromium answered `method` with something other than the protocol describes.
    case unexpectedReply(method: String, reply: String)
    /// The page at `url` could not be loaded.
    case navigationFailed(url: String, error: String)
    /// A script evaluated in the page threw.
    case scriptFailed(expression: String, exception: String)

    var description: String {
        switch self {
        case .browserMissing(let advice): advice
        case .failed(let method, let code, let message): "chromium answered \(method) with error \(code): \(message)"
        case .timedOut(let method, let after): "chromium did not answer \(method) within \(after)"
        case .closed(let method, let log): "chromium closed the DevTools pipe before answering \(method); the end of its log:\n\(log)"
        case .writeFailed(let method, let errno): "could not write \(method) to chromium's DevTools pipe: \(String(cString: strerror(errno)))"
        case .unexpectedReply(let method, let reply): "chromium's reply to \(method) is not as the protocol describes: \(reply)"
        case .navigationFailed(let url, let error): "chromium could not load \(url): \(error)"
        case .scriptFailed(let expression, let exception): "\(expression) threw in the page: \(exception)"
        }
    }
}

/// Headless chromium driven over the DevTools protocol on `--remote-debugging-pipe`: requests go to
/// its descriptor 3 and replies come from its descriptor 4, each message JSON ended by a NUL byte.
///
/// The pipe is read on a thread of its own (a blocking read on Swift's cooperative pool would take
/// one of the machine's two threads from the tests and the fleet); each request waits for its reply
/// by id, with a deadline.
final class HeadlessChromium: Sendable {
    /// The browser to run: `CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`, as
    /// `scripts/chromium` finds it; `nil` when there is none.
    static let executable: String? = {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["CHROMIUM"], !path.isEmpty {
            return FileManager.default.isExecutableFile(atPath: path) ? path : nil
        }
        let directories = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for name in ["chromium", "chromium-browser"] {
            for directory in directories where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
                return "\(directory)/\(name)"
            }
        }
        return nil
    }()

    /// CI must run the browser test: there a missing browser fails it instead of skipping it.
    static var required: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// The browser, or an error that says how to install it.
    static func locate() throws -> String {
        guard let executable else {
            let named = ProcessInfo.processInfo.environment["CHROMIUM"].map { $0.isEmpty ? "" : " (CHROMIUM=\($0) is not an executable)" } ?? ""
            throw DevToolsError.browserMissing(
                "no chromium found\(named), and CI=true needs one: run scripts/chromium, which installs Debian's chromium package, or set CHROMIUM"
            )
        }
        return executable
    }

    private let process: ChildProcess
    /// This process's end of chromium's descriptor 3.
    private let requests: Int32
    private let log: String
    private let state = Mutex(State())

    private struct State {
        var nextId = 0
        var pending: [Int: Pending] = [:]
        var closed = false
        var exceptions: [String] = []
    }

    private struct Pending {
        var method: String
        var continuation: CheckedContinuation<[String: JSONValue], any Error>
    }

    /// A message from chromium: a reply (with the request's id) or an event (with a method).
    private struct Incoming: Decodable {
        struct Failure: Decodable {
            var code: Int
            var message: String
            var data: String?
        }

        var id: Int?
        var result: [String: JSONValue]?
        var error: Failure?
        var method: String?
        var params: [String: JSONValue]?
    }

    private struct Request: Encodable {
        var id: Int
        var method: String
        var sessionId: String?
        var params: [String: JSONValue]
    }

    /// Starts `executable` headless with an empty profile of its own, runs `body` with it, and
    /// closes it (killing it if need be) whether `body` returns or throws.
    ///
    /// - Parameter log: The file chromium's own output goes to (its errors quote the end of it).
    static func with<T: Sendable>(
        executable: String, log: String, _ body: (HeadlessChromium) async throws -> T
    ) async throws -> T {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("eventfleet-chromium-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: profile, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: profile) }
        let browser = try HeadlessChromium(executable: executable, profile: profile, log: log)
        do {
            let value = try await body(browser)
            await browser.shutDown()
            return value
        } catch {
            await browser.shutDown()
            throw error
        }
    }

    private init(executable: String, profile: String, log: String) throws {
        // A write to the pipe of a chromium that has exited must fail with EPIPE, not end the tests.
        signal(SIGPIPE, SIG_IGN)
        let toBrowser = try Self.pipe()
        let fromBrowser: (read: Int32, write: Int32)
        do {
            fromBrowser = try Self.pipe()
        } catch {
            close(toBrowser.read)
            close(toBrowser.write)
            throw error
        }
        // A full pipe (a browser that stopped reading) fails the request instead of blocking the thread.
        _ = fcntl(toBrowser.write, F_SETFL, fcntl(toBrowser.write, F_GETFL) | O_NONBLOCK)
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        do {
            process = try ChildProcess(
                executable,
                arguments: [
                    // The pages are the test's own; the sandbox needs either this as root or user
                    // namespaces that containers often lack.
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-pipe",
                    "--user-data-dir=\(profile)", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--mute-audio",
                    "--hide-scrollbars", "--window-size=1280,900",
                    // The live figures' timers must fire on time in a page nobody looks at.
                    "--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
                    "about:blank",
                ],
                output: .file(log), error: .file(log), descriptors: [3: toBrowser.read, 4: fromBrowser.write]
            )
        } catch {
            [toBrowser.read, toBrowser.write, fromBrowser.read, fromBrowser.write].forEach { close($0) }
            throw error
        }
        // chromium has its ends now; with ours closed, its exit ends our read.
        close(toBrowser.read)
        close(fromBrowser.write)
        requests = toBrowser.write
        self.log = log
        readReplies(from: fromBrowser.read)
    }

    deinit {
        close(requests)
    }

    /// A pipe whose ends no other child inherits (chromium gets its ends by dup2): a write end left
    /// in a fleet process would keep our read from its end when chromium exits.
    private static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard devToolsPipe2(&fds, O_CLOEXEC) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return (fds[0], fds[1])
    }

    /// Sends `method` (to the page of `session`, else to the browser) and returns the result of
    /// chromium's reply.
    ///
    /// - Throws: ``DevToolsError``: chromium's error, no reply within `timeout`, or a closed pipe.
    @discardableResult
    func call(
        _ method: String, _ params: [String: JSONValue] = [:], session: String? = nil, timeout: Duration = .seconds(30)
    ) async throws -> [String: JSONValue] {
        let id = state.withLock { state in
            state.nextId += 1
            return state.nextId
        }
        var message = try JSONEncoder().encode(Request(id: id, method: method, sessionId: session, params: params))
        message.append(0)
        let timer = Task { [self] in
            try await Task.sleep(for: timeout)
            settle(id, with: .failure(DevToolsError.timedOut(method: method, after: timeout)))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let closed = state.withLock { state in
                guard !state.closed else { return true }
                state.pending[id] = Pending(method: method, continuation: continuation)
                return false
            }
            if closed {
                continuation.resume(throwing: DevToolsError.closed(method: method, log: logTail()))
                return
            }
            if let errno = write(message) {
                settle(id, with: .failure(DevToolsError.writeFailed(method: method, errno: errno)))
            }
        }
    }

    /// The uncaught exceptions of the pages' scripts so far (pages opened by ``openPage()``).
    var exceptions: [String] { state.withLock { $0.exceptions } }

    /// A new tab, attached in flat mode: its requests carry the session id on the one pipe.
    func openPage() async throws -> BrowserPage {
        let target = try await call("Target.createTarget", ["url": .string("about:blank")])
        guard case .string(let targetId)? = target["targetId"] else {
            throw DevToolsError.unexpectedReply(method: "Target.createTarget", reply: "\(target)")
        }
        let attached = try await call("Target.attachToTarget", ["targetId": .string(targetId), "flatten": .bool(true)])
        guard case .string(let session)? = attached["sessionId"] else {
            throw DevToolsError.unexpectedReply(method: "Target.attachToTarget", reply: "\(attached)")
        }
        let page = BrowserPage(browser: self, session: session)
        // Reports the scripts' uncaught exceptions as Runtime.exceptionThrown events.
        try await page.call("Runtime.enable")
        return page
    }

    /// Asks chromium to close, and kills it when it has not exited a few seconds later.
    private func shutDown() async {
        _ = try? await call("Browser.close", timeout: .seconds(5))
        await process.stop(grace: .seconds(5))
    }

    /// Writes `bytes` whole; the errno of a failure.
    private func write(_ bytes: Data) -> Int32? {
        var written = 0
        while written < bytes.count {
            let result = bytes[written...].withUnsafeBytes { Glibc.write(requests, $0.baseAddress, $0.count) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { return errno }
            written += result
        }
        return nil
    }

    private func settle(_ id: Int, with result: Result<[String: JSONValue], any Error>) {
        state.withLock { $0.pending.removeValue(forKey: id) }?.continuation.resume(with: result)
    }

    /// Reads messages until chromium closes the pipe, then fails every request still waiting.
    private func readReplies(from fd: Int32) {
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            var pending: [UInt8] = []
            while true {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                var start = pending.count
                pending.append(contentsOf: buffer[0..<count])
                var consumed = 0
                while let end = pending[start...].firstIndex(of: 0) {
                    receive(pending[consumed..<end])
                    consumed = end + 1
                    start = consumed
                }
                if consumed > 0 { pending.removeFirst(consumed) }
            }
            Glibc.close(fd)
            let waiting = state.withLock { state in
                state.closed = true
                defer { state.pending = [:] }
                return Array(state.pending.values)
            }
            let log = logTail()
            for request in waiting {
                request.continuation.resume(throwing: DevToolsError.closed(method: request.method, log: log))
            }
        }
    }

    private func receive(_ bytes: ArraySlice<UInt8>) {
        guard let message = try? JSONDecoder().decode(Incoming.self, from: Data(bytes)) else { return }
        if let id = message.id {
            let method = state.withLock { $0.pending[id]?.method } ?? "request \(id)"
            if let error = message.error {
                let detail = error.data.map { "\(error.message) (\($0))" } ?? error.message
                settle(id, with: .failure(DevToolsError.failed(method: method, code: error.code, message: detail)))
            } else {
                settle(id, with: .success(message.result ?? [:]))
            }
        } else if message.method == "Runtime.exceptionThrown", case .object(let details)? = message.params?["exceptionDetails"] {
            let text = BrowserPage.describe(details)
            state.withLock { $0.exceptions.append(text) }
        }
    }

    /// The end of chromium's own output, for errors.
    private func logTail() -> String {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return String(text.suffix(3_000))
    }
}

/// `pipe2(2)`, which Glibc's Swift module does not declare: a pipe created close-on-exec at once, so
/// that no child spawned meanwhile inherits it.
@_silgen_name("pipe2")
private func devToolsPipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

/// A tab of ``HeadlessChromium``.
struct BrowserPage: Sendable {
    let browser: HeadlessChromium
    let session: String

    @discardableResult
    func call(_ method: String, _ params: [String: JSONValue] = [:], timeout: Duration = .seconds(30)) async throws -> [String: JSONValue] {
        try await browser.call(method, params, session: session, timeout: timeout)
    }

    /// Loads `url` and returns once its document has loaded (`readyState` complete, deferred
    /// scripts run).
    func navigate(to url: String) async throws {
        let navigation = try await call("Page.navigate", ["url": .string(url)])
        if case .string(let error)? = navigation["errorText"], !error.isEmpty {
            throw DevToolsError.navigationFailed(url: url, error: error)
        }
        try await waitUntil(timeout: .seconds(30), "\(url) loaded") {
            do {
                return try await evaluate("location.href === \(Self.literal(url)) && document.readyState === 'complete'") == .bool(true)
            } catch DevToolsError.failed, DevToolsError.scriptFailed {
                // The old document's context went away under the evaluation: still navigating.
                return false
            }
        }
    }

    /// The value of `expression` evaluated in the page (a promise awaited).
    @discardableResult
    func evaluate(_ expression: String) async throws -> JSONValue {
        let reply = try await call("Runtime.evaluate", [
            "expression": .string(expression), "returnByValue": .bool(true), "awaitPromise": .bool(true),
        ])
        if case .object(let details)? = reply["exceptionDetails"] {
            throw DevToolsError.scriptFailed(expression: expression, exception: Self.describe(details))
        }
        guard case .object(let result)? = reply["result"] else {
            throw DevToolsError.unexpectedReply(method: "Runtime.evaluate", reply: "\(reply)")
        }
        return result["value"] ?? .null
    }

    /// The string `expression` evaluates to; `nil` for anything else (`null` when an element is missing).
    func string(_ expression: String) async throws -> String? {
        guard case .string(let value) = try await evaluate(expression) else { return nil }
        return value
    }

    /// The strings `expression` evaluates to (an array of them).
    func strings(_ expression: String) async throws -> [String] {
        guard case .array(let values) = try await evaluate(expression) else { return [] }
        return values.compactMap { if case .string(let value) = $0 { value } else { nil } }
    }

    /// Saves what the tab shows as a PNG at `path`.
    func screenshot(to path: String) async throws {
        let reply = try await call("Page.captureScreenshot", ["format": .string("png")])
        guard case .string(let base64)? = reply["data"], let data = Data(base64Encoded: base64) else {
            throw DevToolsError.unexpectedReply(method: "Page.captureScreenshot", reply: "\(reply.keys)")
        }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// `text` as a JavaScript string literal (JSON's is one).
    static func literal(_ text: String) -> String {
        (try? JSONEncoder().encode(text)).map { String(decoding: $0, as: UTF8.self) } ?? "''"
    }

    /// An exception's message from the protocol's `ExceptionDetails`.
    static func describe(_ details: [String: JSONValue]) -> String {
        if case .object(let exception)? = details["exception"], case .string(let description)? = exception["description"] {
            return description
        }
        if case .string(let text)? = details["text"] { return text }
        return "\(details)"
    }
}
