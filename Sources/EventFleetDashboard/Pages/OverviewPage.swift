import EventFleetJobs

/// The fleet at a glance: jobs ready, running and dead, throughput, the scheduler's lag and what
/// holds the log back, charts of the last hour, workers, unfinished backfills and projection
/// versions being built.
struct OverviewPage {
    let status: FleetStatus
    let versions: [ProjectionVersionStatus]
    /// The last hour, `nil` while it has not been read.
    var history: FleetHistory? = nil
    /// Why the history's last read failed, while its reads fail.
    var historyError: String? = nil
    let base: String

    var page: Page {
        let ready = status.lanes.reduce(0) { $0 + $1.ready }
        let running = status.lanes.reduce(0) { $0 + $1.running }
        let dead = status.lanes.reduce(0) { $0 + $1.dead }
        let perMinute = status.lanes.reduce(0) { $0 + $1.completedPerMinute }
        let oldest = status.lanes.compactMap(\.oldestReadySeconds).max()
        let tenants = Set(status.lanes.map(\.partition)).count
        // The keys are LiveFigures' properties: the live script rewrites each figure under its key.
        let cards: [HTML] = [
            card("ready jobs", Layout.count(ready, beyondLimit: status.lanes.contains { $0.readyBeyondLimit == true }), key: "ready"),
            card("running jobs", Layout.count(running), key: "running"),
            card("dead jobs", Layout.count(dead, beyondLimit: status.lanes.contains { $0.deadBeyondLimit == true }), key: "dead", tone: dead > 0 ? "bad" : nil, link: base + "/dead"),
            card("jobs done per minute", Layout.count(Int64(perMinute.rounded())), key: "donePerMinute"),
            card("oldest ready job", Layout.duration(oldest), key: "oldestReadySeconds", tone: (oldest ?? 0) > 60 ? "warn" : nil),
            card("scheduler lag (events)", Layout.count(status.scheduler.lagEvents), key: "lagEvents", tone: status.scheduler.lagEvents > 10_000 ? "warn" : nil),
            card("tenants", Layout.count(tenants), key: "tenants", link: base + "/tenants"),
            card("workers", Layout.count(status.workers.count), key: "workers", link: base + "/workers"),
        ]
        let leader: HTML = status.scheduler.leader.map { "leader <code>\($0)</code>" } ?? #"<span class="bad">no scheduler holds the lease</span>"#
        let head: HTML = status.scheduler.headPosition.map { "log head at global position \(Layout.count($0))" } ?? "the log is empty"
        var sections: [HTML] = []
        if !status.scheduler.heldBack.isEmpty {
            let rows = status.scheduler.heldBack.map { hold -> HTML in
                """
                <tr><td>\(hold.partition ?? "(new partition)")</td><td class="n">\(Layout.duration(hold.ageSeconds))</td>\
                <td>\(hold.applicationName ?? "")</td><td class="n">\(hold.pid)</td><td>\(hold.state ?? "")</td></tr>
                """
            }
            sections.append("""
                <h2>Held back by appends in flight</h2>
                <p class="muted">Each holds its partition back for every reader of the log until it commits or rolls back.</p>
                <table><thead><tr><th>partition</th><th class="n">open for</th><th>application</th><th class="n">pid</th><th>state</th></tr></thead>
                <tbody>\(rows)</tbody></table>
                """)
        }
        let building = versions.filter { $0.state == .building || $0.state == .ready }
        if !building.isEmpty {
            let rows = building.map { version -> HTML in
                """
                <tr><td>\(version.projection)</td><td class="n">\(version.version)</td><td>\(version.state.rawValue)</td>\
                <td class="n">\(version.streamsDone.map { Layout.count($0) } ?? "–") / \(version.streams.map { Layout.count($0) } ?? "–")</td>\
                <td class="n">\(version.eventsBehind.map { Layout.count($0) } ?? "–")</td></tr>
                """
            }
            sections.append("""
                <h2>Projection versions being built</h2>
                <table><thead><tr><th>projection</th><th class="n">version</th><th>state</th><th class="n">streams done</th><th class="n">events behind</th></tr></thead>
                <tbody>\(rows)</tbody></table>
                """)
        }
        if !status.backfills.isEmpty {
            let rows = status.backfills.map { backfill -> HTML in
                """
                <tr><td class="n">\(backfill.id)</td><td>\(backfill.projections.joined(separator: ", "))</td><td>\(backfill.partition ?? "every tenant")</td>\
                <td class="n">\(Layout.count(backfill.streams)) / \(Layout.count(backfill.total))</td><td class="n">\(Layout.duration(backfill.ageSeconds))</td></tr>
                """
            }
            sections.append("""
                <h2>Backfills recording their jobs</h2>
                <table><thead><tr><th class="n">id</th><th>projections</th><th>tenant</th><th class="n">streams</th><th class="n">age</th></tr></thead>
                <tbody>\(rows)</tbody></table>
                """)
        }
        if !status.unrunnable.isEmpty {
            let rows = status.unrunnable.map { item -> HTML in
                "<tr><td>\(item.projection)</td><td>\(item.lane.rawValue)</td><td class=\"n\">\(Layout.count(item.ready))</td></tr>"
            }
            sections.append("""
                <h2 class="warn">Ready jobs no running worker takes</h2>
                <table><thead><tr><th>projection</th><th>lane</th><th class="n">ready</th></tr></thead><tbody>\(rows)</tbody></table>
                """)
        }
        return Page(title: "Overview", section: .overview, body: """
            <h1>Overview</h1>
            <div class="cards">\(cards)</div>
            <p>Scheduler: \(leader); \(head).</p>
            \(charts)
            \(sections)
            """)
    }

    /// The charts of the last hour, or why there are none.
    private var charts: HTML {
        let failure: HTML = historyError.map { error in
            let shown: HTML = history == nil ? "" : " The charts show its last read."
            return "<p class=\"warn\">The history could not be read: \(error).\(shown)</p>"
        } ?? ""
        let content: HTML
        if let history, !history.minutes.isEmpty {
            content = "<div class=\"charts\">\(Chart.overview(history).map(\.html))</div>"
        } else if history != nil {
            content = #"<p class="muted">No history yet: the leading scheduler records a point each minute.</p>"#
        } else {
            content = historyError == nil ? #"<p class="muted">The history has not been read yet.</p>"# : ""
        }
        return """
            <h2>The last hour</h2>
            \(failure)\(content)
            """
    }

    private func card(_ label: String, _ value: String, key: String, tone: String? = nil, link: String? = nil) -> HTML {
        let figure: HTML = "<span data-live=\"\(key)\">\(value)</span>"
        let shown: HTML = link.map { "<a href=\"\($0)\">\(figure)</a>" } ?? figure
        return "<div class=\"card\"><div class=\"value \(tone ?? "")\">\(shown)</div><div class=\"label\">\(label)</div></div>"
    }
}
