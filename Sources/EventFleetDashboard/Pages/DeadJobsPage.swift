import EventFleetJobs
import Foundation
import Hummingbird

/// Dead jobs, newest first, filtered by tenant, projection and error text, each with its error
/// history.
struct DeadJobsPage {
    /// `?tenant=`, `?projection=`, `?error=` (a substring of any attempt's error), `?page=`.
    struct Filter: Sendable, Equatable {
        var tenant: String?
        var projection: String?
        var error: String?
        var page: Int

        init(tenant: String? = nil, projection: String? = nil, error: String? = nil, page: Int = 1) {
            self.tenant = tenant
            self.projection = projection
            self.error = error
            self.page = page
        }

        init(_ parameters: Parameters) {
            func value(_ name: String) -> String? { parameters.get(name).flatMap { $0.isEmpty ? nil : $0 } }
            self.init(
                tenant: value("tenant"), projection: value("projection"), error: value("error"),
                page: max(1, parameters.get("page").flatMap(Int.init) ?? 1)
            )
        }

        func matches(_ job: DeadJob) -> Bool {
            (projection.map { job.projection == $0 } ?? true)
                && (error.map { job.errors.localizedCaseInsensitiveContains($0) } ?? true)
        }
    }

    /// How many of the newest dead jobs the filters search.
    static let scanned = 5_000

    let dead: [DeadJob]
    let filter: Filter
    let pageSize: Int
    let base: String
    let forms: Forms?

    var page: Page {
        let matching = dead.filter(filter.matches)
        let pages = max(1, (matching.count + pageSize - 1) / pageSize)
        let current = min(filter.page, pages)
        let shown = Array(matching.dropFirst((current - 1) * pageSize).prefix(pageSize))
        let scope: HTML = dead.count >= Self.scanned ? " (of the newest \(Layout.count(Self.scanned)))" : ""
        let list: HTML = shown.isEmpty ? #"<p class="muted">No dead jobs match.</p>"# : Self.table(shown, base: base, forms: forms)
        var navigation: [HTML] = []
        let filters: [(String, String?)] = [("tenant", filter.tenant), ("projection", filter.projection), ("error", filter.error)]
        if current > 1 { navigation.append("<a href=\"\(base + "/dead" + Layout.query(filters + [("page", String(current - 1))]))\">previous</a>") }
        navigation.append("<span>page \(current) of \(pages) · \(Layout.count(matching.count)) dead job\(matching.count == 1 ? "" : "s")\(scope)</span>")
        if current < pages { navigation.append("<a href=\"\(base + "/dead" + Layout.query(filters + [("page", String(current + 1))]))\">next</a>") }
        return Page(title: "Dead jobs", section: .dead, body: """
            <h1>Dead jobs</h1>
            <form class="filters" method="get" action="\(base)/dead">
            <input name="tenant" value="\(filter.tenant)" placeholder="tenant" aria-label="tenant">
            <input name="projection" value="\(filter.projection)" placeholder="projection" aria-label="projection">
            <input name="error" value="\(filter.error)" placeholder="error contains" aria-label="error text">
            <button type="submit">Filter</button></form>
            \(bulkForms(matching: matching.count))
            \(list)
            <div class="pages">\(navigation)</div>
            """)
    }

    /// The jobs with their attempts' errors, newest attempt first.
    static func table(_ jobs: [DeadJob], base: String, forms: Forms?) -> HTML {
        let rows = jobs.map { job -> HTML in
            let attempts = Self.attempts(job.errors).map { attempt -> HTML in
                "<li><span class=\"muted\">attempt \(attempt.attempt) · \(attempt.worker ?? "unknown worker") · \(attempt.at)</span><pre>\(attempt.error)</pre></li>"
            }
            return """
                <tr><td class="n">\(job.id)</td><td><a href="\(Layout.tenantPath(job.partition, base: base))">\(job.partition)</a></td>\
                <td>\(job.projection)</td><td><code>\(job.streamId)</code></td><td>\(job.lane.rawValue)</td><td class="n">\(job.attempts)</td>\
                <td><ol reversed>\(attempts)</ol></td>\(buttons(job, forms))</tr>
                """
        }
        return """
            <table><thead><tr><th class="n">job</th><th>tenant</th><th>projection</th><th>stream</th><th>lane</th><th class="n">attempts</th>\
            <th>errors</th>\(forms == nil ? "" : "<th></th>")</tr></thead><tbody>\(rows)</tbody></table>
            """
    }

    private static func buttons(_ job: DeadJob, _ forms: Forms?) -> HTML {
        guard let forms else { return "" }
        let fields = [("job", String(job.id))]
        return "<td>\(forms.button("Retry", action: "retry", fields: fields))\(forms.button("Purge", action: "purge", fields: fields, tone: "bad"))</td>"
    }

    /// Retry or purge every dead job the filter matches.
    private func bulkForms(matching: Int) -> HTML {
        guard let forms, matching > 0 else { return "" }
        let fields = [("scope", "filtered"), ("tenant", filter.tenant ?? ""), ("projection", filter.projection ?? ""), ("error", filter.error ?? "")]
        let what = filter.tenant == nil && filter.projection == nil && filter.error == nil ? "all dead jobs" : "the \(Layout.count(matching)) matching"
        return """
            <div class="actions">\(forms.button("Retry \(what)", action: "retry", fields: fields, confirm: "Retry \(what)?"))\
            \(forms.button("Purge \(what)", action: "purge", fields: fields, confirm: "Delete \(what)?", tone: "bad"))</div>
            """
    }

    /// One failed attempt from a dead job's error history (`ef_jobs.errors`).
    struct Attempt: Decodable {
        var attempt: Int
        var worker: String?
        var error: String
        var at: String
    }

    /// The attempts in `json`, newest first; the raw text as one attempt when it is not the
    /// expected shape.
    static func attempts(_ json: String) -> [Attempt] {
        guard let attempts = try? JSONDecoder().decode([Attempt].self, from: Data(json.utf8)) else {
            return [Attempt(attempt: 0, worker: "", error: json, at: "")]
        }
        return attempts.reversed()
    }
}
