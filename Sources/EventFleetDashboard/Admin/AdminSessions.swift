import Foundation
import Synchronization

/// The signed-in browsers of one dashboard process: a session is a random id in an http-only
/// cookie, the admin token's name it acts under, the token its forms must carry (against requests
/// forged by other sites) and a notice for its next page.
///
/// Sessions live in the process: a restarted dashboard asks to sign in again, and replicas behind
/// a load balancer need sticky sessions (scripts use a bearer header and need none).
final class AdminSessions: Sendable {
    /// A signed-in browser.
    struct Session: Sendable {
        var name: String
        /// The value every form of the session carries in its `csrf` field.
        var csrf: String
        var expires: ContinuousClock.Instant
        /// What the last action did, shown once on the next page.
        var notice: String?
    }

    /// The cookie that carries the session's id.
    static let cookieName = "eventfleet_session"
    /// The most sessions kept: signing in beyond it ends the oldest.
    static let capacity = 1_000

    let lifetime: Duration
    private let sessions = Mutex<[String: Session]>([:])

    init(lifetime: Duration) {
        self.lifetime = lifetime
    }

    /// Starts a session for `name` and returns its id.
    func start(name: String) -> String {
        let id = Self.randomToken()
        let now = ContinuousClock.now
        sessions.withLock { sessions in
            sessions = sessions.filter { $0.value.expires > now }
            if sessions.count >= Self.capacity, let oldest = sessions.min(by: { $0.value.expires < $1.value.expires }) {
                sessions[oldest.key] = nil
            }
            sessions[id] = Session(name: name, csrf: Self.randomToken(), expires: now + lifetime)
        }
        return id
    }

    /// The live session with `id`.
    func session(_ id: String) -> Session? {
        sessions.withLock { sessions in
            guard let session = sessions[id] else { return nil }
            guard session.expires > .now else {
                sessions[id] = nil
                return nil
            }
            return session
        }
    }

    /// Leaves `notice` for the session's next page.
    func leave(_ notice: String, for id: String) {
        sessions.withLock { $0[id]?.notice = notice }
    }

    /// The session's notice, once.
    func takeNotice(of id: String) -> String? {
        sessions.withLock { sessions in
            defer { sessions[id]?.notice = nil }
            return sessions[id]?.notice
        }
    }

    func end(_ id: String) {
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    /// 32 random bytes from the system's generator, hex encoded.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in
            let word = generator.next() as UInt64
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }
}
