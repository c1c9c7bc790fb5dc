import Foundation

/// What a page renders inside the layout.
struct Page: Sendable {
    /// Which navigation entry is the page's.
    enum Section: String, Sendable, CaseIterable {
        case overview = "Overview"
        case tenants = "Tenants"
        case workers = "Workers"
        case projections = "Projections"
        case dead = "Dead jobs"
        case audit = "Audit"

        var path: String {
            switch self {
            case .overview: "/"
            case .tenants: "/tenants"
            case .workers: "/workers"
            case .projections: "/projections"
            case .dead: "/dead"
            case .audit: "/audit"
            }
        }
    }

    /// The read a page shows is the last good one: later reads failed.
    struct Stale: Sendable {
        var error: String
        var readAt: Date
    }

    var title: String
    var section: Section?
    var body: HTML
    /// Answered with status 404 (a tenant the fleet does not know).
    var notFound = false
    var stale: Stale?

    /// The page shown while the fleet cannot be read and no read has succeeded.
    static func unavailable(_ error: any Error) -> Page {
        unavailable(String(describing: error))
    }

    static func unavailable(_ error: String) -> Page {
        Page(title: "The fleet cannot be read", section: nil, body: """
            <section class="stale"><h1>The fleet cannot be read</h1>
            <p>The database cannot be reached, or answered with an error (a database the fleet's
            migrations have not reached answers one: <code>eventfleet migrate</code>). The dashboard shows
            the fleet again as soon as it can read it. The error:</p>
            <pre>\(error)</pre></section>
            """)
    }
}

/// What the frame of a page says about its visitor: who is signed in (with the form that signs
/// out), how to sign in, or that the dashboard is read-only; and what the visitor's last action did.
struct Chrome: Sendable {
    var signedIn: SignedIn?
    /// Whether the dashboard has admin tokens (someone can sign in).
    var admin: Bool
    var notice: String?
    /// The page itself, to come back to after signing in.
    var back: String

    static let anonymous = Chrome(signedIn: nil, admin: false, notice: nil, back: "/")

    func header(base: String) -> HTML {
        if let signedIn {
            return """
                <span class="who">signed in as <strong>\(signedIn.name)</strong></span>\
                <form class="inline" method="post" action="\(base)/logout"><input type="hidden" name="csrf" value="\(signedIn.csrf)">\
                <button type="submit">Sign out</button></form>
                """
        }
        if admin { return "<a class=\"who\" href=\"\(base)/login\(Layout.query([("back", back)]))\">Sign in to act</a>" }
        return #"<span class="who muted">read-only</span>"#
    }
}

/// The frame of every page: navigation, the stale banner, the page's content, the assets.
enum Layout {
    static func page(_ page: Page, base: String, refresh: Duration, chrome: Chrome = .anonymous) -> HTML {
        let navigation = Page.Section.allCases.map { section -> HTML in
            let current: HTML = section == page.section ? #" aria-current="page""# : ""
            return "<a href=\"\(base + section.path)\"\(current)>\(section.rawValue)</a>"
        }
        let stale: HTML = page.stale.map { stale in
            """
            <div id="stale" class="stale" role="status">The fleet could not be read since \(ISO8601DateFormatter().string(from: stale.readAt)): \
            \(stale.error). The figures are the last read.</div>
            """
        } ?? #"<div id="stale" class="stale" role="status" hidden></div>"#
        let notice: HTML = chrome.notice.map { "<div class=\"notice\" role=\"status\">\($0)</div>" } ?? ""
        let milliseconds = refresh.components.seconds * 1_000 + refresh.components.attoseconds / 1_000_000_000_000_000
        return """
            <!doctype html>
            <html lang="en" data-base="\(base)" data-refresh="\(milliseconds)">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(page.title) · EventFleet</title>
            <link rel="stylesheet" href="\(base)/assets/dashboard.css">
            <script src="\(base)/assets/live.js" defer></script>
            </head>
            <body>
            <header><strong>EventFleet</strong><nav>\(navigation)</nav>\(chrome.header(base: base))</header>
            \(stale)
            \(notice)
            <main>
            \(page.body)
            </main>
            </body>
            </html>
            """
    }

    /// Seconds as a short duration: `42 s`, `3 min`, `2.5 h` (the live script formats them alike).
    static func duration(_ seconds: Double?) -> String {
        guard let seconds else { return "–" }
        switch seconds {
        case ..<60: return "\(Int(seconds.rounded())) s"
        case ..<3_600: return "\(Int((seconds / 60).rounded())) min"
        default: return String(format: "%.1f h", seconds / 3_600)
        }
    }

    /// A count with thousands separators (the live script formats them alike).
    static func count<Number: BinaryInteger>(_ value: Number) -> String {
        let digits = String(value.magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { grouped.append(",") }
            grouped.append(digit)
        }
        return (value < 0 ? "-" : "") + grouped
    }

    /// A count that stops at a limit: `10,000+` beyond it.
    static func count<Number: BinaryInteger>(_ value: Number, beyondLimit: Bool?) -> String {
        count(value) + (beyondLimit == true ? "+" : "")
    }

    /// The path of a tenant's page (its name percent-encoded).
    static func tenantPath(_ partition: String, base: String) -> String {
        base + "/tenants/" + (partition.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? partition)
    }

    /// `query` as a URL query string.
    static func query(_ items: [(String, String?)]) -> String {
        var components = URLComponents()
        components.queryItems = items.compactMap { name, value in value.map { URLQueryItem(name: name, value: $0) } }
        return components.percentEncodedQuery.map { "?" + $0 } ?? ""
    }
}
