import Foundation

/// The actions taken through the dashboard, newest first, and how long they are kept.
struct AuditPage {
    let entries: [AuditEntry]
    let retention: Duration

    var page: Page {
        let days = retention.components.seconds / 86_400
        let rows = entries.map { entry -> HTML in
            """
            <tr><td>\(ISO8601DateFormatter().string(from: entry.at))</td><td>\(entry.actor)</td><td>\(entry.action)</td>\
            <td>\(entry.partition ?? "–")</td><td><code>\(entry.detail)</code></td><td>\(entry.outcome)</td></tr>
            """
        }
        let list: HTML = entries.isEmpty
            ? #"<p class="muted">No action has been taken through the dashboard.</p>"#
            : """
                <table><thead><tr><th>at</th><th>who</th><th>action</th><th>tenant</th><th>values</th><th>outcome</th></tr></thead>
                <tbody>\(rows)</tbody></table>
                """
        return Page(title: "Audit", section: .audit, body: """
            <h1>Audit</h1>
            <p class="muted">Every action taken through the dashboard, under the name of the admin token it was taken with.
            Entries older than \(days) day\(days == 1 ? "" : "s") are deleted.</p>
            \(list)
            """)
    }
}
