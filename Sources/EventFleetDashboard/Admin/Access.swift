import Foundation
import Hummingbird

/// Who a request comes from, as far as acting goes.
enum Visitor: Sendable {
    /// Not signed in (or a dashboard without admin tokens).
    case anonymous
    /// A browser signed in with a token: its forms carry the session's `csrf` value.
    case session(id: String, AdminSessions.Session)
    /// A script that sent `Authorization: Bearer <token>`: browsers never add that header on their
    /// own, so its requests cannot be forged by another site.
    case bearer(name: String)
    /// A request with a bearer header that is not one of the tokens.
    case refused

    /// What the page's forms need: the name shown and the session's `csrf` value.
    var signedIn: SignedIn? {
        if case .session(_, let session) = self { SignedIn(name: session.name, csrf: session.csrf) } else { nil }
    }
}

/// A signed-in browser, as the pages render their forms for it.
struct SignedIn: Sendable {
    var name: String
    var csrf: String
}

/// Why an action was refused before it was read.
enum AccessRefusal: Error, Sendable {
    /// The dashboard was started without admin tokens.
    case readOnly
    /// Neither a session nor a bearer token.
    case notSignedIn
    /// A bearer token that is not one of the dashboard's.
    case unknownToken
    /// A form of a session without the session's `csrf` value, or a request another site sent.
    case forged

    var status: HTTPResponse.Status {
        switch self {
        case .readOnly, .forged: .forbidden
        case .notSignedIn, .unknownToken: .unauthorized
        }
    }

    var message: String {
        switch self {
        case .readOnly: "This dashboard is read-only: it was started without --admin-token-file (or EVENTFLEET_DASHBOARD_ADMIN_TOKENS)."
        case .notSignedIn: "Sign in with an admin token to act, or send Authorization: Bearer <token>."
        case .unknownToken: "The bearer token is not one of this dashboard's admin tokens."
        case .forged: "The form did not come from this dashboard's page (its csrf value is missing or stale): reload the page and try again."
        }
    }
}

/// The admin side of a dashboard: its tokens and its signed-in browsers.
struct Access: Sendable {
    let tokens: AdminTokens?
    let sessions: AdminSessions
    /// Whether the session cookie is sent over HTTPS only (browsers treat localhost as secure).
    let secureCookies: Bool
    let cookiePath: String

    /// Who `request` comes from.
    func visitor(_ request: Request) -> Visitor {
        guard let tokens else { return .anonymous }
        // Another scheme (a reverse proxy's basic authentication) is not the dashboard's to judge.
        if let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            let token = authorization.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces)
            guard let name = tokens.name(of: token) else { return .refused }
            return .bearer(name: name)
        }
        if let id = request.cookies[AdminSessions.cookieName]?.value, let session = sessions.session(id), tokens.names.contains(session.name) {
            return .session(id: id, session)
        }
        return .anonymous
    }

    /// The name an action of `visitor` acts under, once its form is checked against forgery.
    func actor(_ visitor: Visitor, request: Request, form: [String: String]) throws(AccessRefusal) -> String {
        guard tokens != nil else { throw .readOnly }
        // Browsers mark a request that another site made; a script sends no such header.
        if request.headers.contains(where: { $0.name.canonicalName == "sec-fetch-site" && $0.value == "cross-site" }) { throw .forged }
        switch visitor {
        case .anonymous: throw .notSignedIn
        case .refused: throw .unknownToken
        case .bearer(let name): return name
        case .session(_, let session):
            guard let csrf = form["csrf"], AdminTokens.constantTimeEquals(csrf, session.csrf) else { throw .forged }
            return session.name
        }
    }

    /// The cookie that carries session `id` (or, for `nil`, one that ends it).
    func cookie(_ id: String?) -> Cookie {
        Cookie(
            name: AdminSessions.cookieName, value: id ?? "", maxAge: id == nil ? 0 : Int(sessions.lifetime.components.seconds),
            path: cookiePath, secure: secureCookies, httpOnly: true, sameSite: .strict
        )
    }
}

/// The fields of an `application/x-www-form-urlencoded` body (the last of a repeated name).
enum FormBody {
    /// The largest form read.
    static let limit = 64 * 1_024

    static func fields(_ request: inout Request) async throws -> [String: String] {
        let body = try await request.collectBody(upTo: limit)
        return fields(String(buffer: body))
    }

    static func fields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }
}
