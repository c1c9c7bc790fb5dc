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

        var path: String {
            switch self {
            case .overview: "/"
            case .tenants: "/tenants"
            case .workers: "/workers"
            case .projections: "/projections"
            case .dead: "/dead"
            }
        }
    }

    var title: String
    var section: Section?
    var body: HTML
    /// Answered with status 404 (a tenant the fleet does not know).
    var notFound = false

    /// The page shown while the database cannot be reached.
    static func unavailable(_ error: any Error) -> Page {
        Page(title: "The fleet cannot be read", section: nil, body: """
            <section class="stale"><h1>The fleet cannot be read</h1>
            <p>The database cannot be reached, or answered with an error (a database the fleet's
            migrations have not reached answers one: <code>eventfleet migrate</code>). The dashboard shows
            the fleet again as soon as it can read it. The error:</p>
            <pre>\(String(describing: error))</pre></section>
            """)
    }
}

/// The frame of every page: navigation, the stylesheet, the page's content.
enum Layout {
    static func page(_ page: Page, base: String) -> HTML {
        let navigation = Page.Section.allCases.map { section -> HTML in
            let current: HTML = section == page.section ? #" aria-current="page""# : ""
            return "<a href=\"\(base + section.path)\"\(current)>\(section.rawValue)</a>"
        }
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(page.title) · EventFleet</title>
            <link rel="stylesheet" href="\(base)/assets/dashboard.css">
            </head>
            <body>
            <header><strong>EventFleet</strong><nav>\(navigation)</nav></header>
            <main>
            \(page.body)
            </main>
            </body>
            </html>
            """
    }

    /// Seconds as a short duration: `42 s`, `3 min`, `2.5 h`.
    static func duration(_ seconds: Double?) -> String {
        guard let seconds else { return "–" }
        switch seconds {
        case ..<60: return String(format: "%.0f s", seconds)
        case ..<3_600: return String(format: "%.0f min", seconds / 60)
        default: return String(format: "%.1f h", seconds / 3_600)
        }
    }

    /// A count with thousands separators.
    static func count<Number: BinaryInteger>(_ value: Number) -> String {
        let formatter = NumberFormatter()
        formatter.numberStyle = .decimal
        formatter.groupingSeparator = ","
        return formatter.string(from: NSNumber(value: Int64(value))) ?? String(value)
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

    static let stylesheet = """
        :root { color-scheme: light dark; --line: #8884; --muted: #888; --bad: #c33; --warn: #b80; --good: #2a2; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, sans-serif; }
        header { display: flex; gap: 2em; align-items: center; padding: .6em 1.5em; border-bottom: 1px solid var(--line); }
        nav { display: flex; gap: 1.2em; }
        nav a { text-decoration: none; }
        nav a[aria-current] { font-weight: 600; text-decoration: underline; }
        main { padding: 1em 1.5em; max-width: 1400px; }
        h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid var(--line); vertical-align: top; }
        th a { text-decoration: none; }
        td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
        .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: .8em; }
        .card { border: 1px solid var(--line); border-radius: 6px; padding: .6em .8em; }
        .card .value { font-size: 1.6em; font-variant-numeric: tabular-nums; }
        .card .label { color: var(--muted); }
        .bad { color: var(--bad); } .warn { color: var(--warn); } .good { color: var(--good); } .muted { color: var(--muted); }
        .stale { border: 2px solid var(--bad); padding: .5em 1em; border-radius: 6px; }
        pre { white-space: pre-wrap; word-break: break-word; margin: 0; }
        form.filters { display: flex; gap: .6em; flex-wrap: wrap; margin: .6em 0; }
        .pages { margin: .8em 0; display: flex; gap: 1em; }
        """
}
