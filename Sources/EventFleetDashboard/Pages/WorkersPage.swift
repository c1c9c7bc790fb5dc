import EventFleetJobs

/// Every registered worker with the jobs it has done, and the schedulers' leader.
struct WorkersPage {
    let status: FleetStatus

    var page: Page {
        let rows = status.workers.sorted { $0.id < $1.id }.map { worker -> HTML in
            let state: HTML = worker.draining ? #"<span class="warn">draining</span>"# : "running"
            let heartbeat: HTML = worker.heartbeatAgeSeconds > 15
                ? "<span class=\"bad\">\(Layout.duration(worker.heartbeatAgeSeconds)) ago</span>"
                : "\(Layout.duration(worker.heartbeatAgeSeconds)) ago"
            let lanes = worker.lanes.map { $0.map(\.rawValue).joined(separator: ", ") } ?? "–"
            let partitions = worker.partitions.map { $0.joined(separator: ", ") } ?? "every tenant"
            let projections = worker.projections.map { $0.joined(separator: ", ") } ?? "–"
            return """
                <tr><td><code>\(worker.id)</code></td><td>\(worker.host)</td><td class="n">\(worker.pid)</td><td>\(state)</td>\
                <td>\(lanes)</td><td>\(partitions)</td><td>\(projections)</td>\
                <td class="n">\(Layout.count(worker.running)) / \(worker.slots)</td>\
                <td class="n">\(worker.completed.map { Layout.count($0) } ?? "–")</td>\
                <td class="n">\(worker.failed.map { Layout.count($0) } ?? "–")</td><td class="n">\(heartbeat)</td>\
                <td class="n">\(Layout.duration(worker.ageSeconds))</td></tr>
                """
        }
        let leader: HTML = status.scheduler.leader.map { "<p>Leading scheduler: <code>\($0)</code></p>" }
            ?? #"<p class="bad">No scheduler holds the leader lease: nothing schedules new events.</p>"#
        let empty: HTML = rows.isEmpty ? #"<p class="muted">No worker is registered.</p>"# : ""
        return Page(title: "Workers", section: .workers, body: """
            <h1>Workers</h1>
            \(leader)
            <table><thead><tr><th>worker</th><th>host</th><th class="n">pid</th><th>state</th><th>lanes</th><th>tenants</th>\
            <th>projections</th><th class="n">jobs / slots</th><th class="n">jobs done</th><th class="n">failed</th><th class="n">last heartbeat</th><th class="n">up for</th></tr></thead>\
            <tbody>\(rows)</tbody></table>
            \(empty)
            """)
    }
}
