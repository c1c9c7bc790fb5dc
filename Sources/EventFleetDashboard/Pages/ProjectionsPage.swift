import EventFleetJobs

/// Every projection version: its state, table and view, and per tenant how far it has come.
struct ProjectionsPage {
    let versions: [ProjectionVersionStatus]

    var page: Page {
        let sections = versions.map { version -> HTML in
            let tenants = version.tenants.map { tenant -> HTML in
                """
                <tr><td>\(tenant.partition)</td><td class="n">\(tenant.streamsDone.map { Layout.count($0) } ?? "–") / \(tenant.streams.map { Layout.count($0) } ?? "–")</td>\
                <td class="n">\(tenant.eventsBehind.map { Layout.count($0) } ?? "–")</td><td class="n">\(Layout.count(tenant.jobsPending))</td>\
                <td class="n">\(Layout.count(tenant.jobsDead))</td></tr>
                """
            }
            let state = version.state.rawValue
            let tone = switch version.state {
            case .active: "good"
            case .behind: "warn"
            case .building, .ready, .retired: "muted"
            }
            let details: HTML = version.state == .retired || tenants.isEmpty ? "" : """
                <table><thead><tr><th>tenant</th><th class="n">streams done / all</th><th class="n">events behind</th>\
                <th class="n">jobs pending</th><th class="n">dead</th></tr></thead><tbody>\(tenants)</tbody></table>
                """
            return """
                <h2>\(version.projection) <span class="muted">version \(version.version)</span> <span class="\(tone)">\(state)</span></h2>
                <p>table <code>\(version.table ?? "none")</code>\(version.view.map { view -> HTML in " · view <code>\(view)</code>" } ?? "")\
                \(version.backfilling ? " · backfilling" : "")\(version.promotesWhenCaughtUp ? " · promotes itself when caught up" : "")</p>
                \(details)
                """
        }
        let empty: HTML = sections.isEmpty ? #"<p class="muted">No projection is registered: start a worker.</p>"# : ""
        return Page(title: "Projections", section: .projections, body: """
            <h1>Projections</h1>
            \(sections)
            \(empty)
            """)
    }
}
