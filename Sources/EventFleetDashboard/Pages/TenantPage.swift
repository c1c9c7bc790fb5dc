import EventFleetJobs
import Foundation

/// One tenant: its lanes, its long-waiting streams and its dead jobs with their errors; for a
/// signed-in visitor, the forms that pause, resume, scale and backfill it and retry or purge its
/// dead jobs.
struct TenantPage {
    let partition: String
    let status: FleetStatus
    let dead: [DeadJob]
    let waiting: [WaitingJob]
    let longWait: Duration
    /// The projection versions a backfill may name.
    let projections: [String]
    let base: String
    let forms: Forms?

    var page: Page {
        let lanes = status.lanes.filter { $0.partition == partition }
        guard !lanes.isEmpty || !dead.isEmpty || !waiting.isEmpty else {
            return Page(title: "Unknown tenant", section: .tenants, body: """
                <h1>No tenant “\(partition)”</h1>
                <p>The fleet has no jobs or quota for it. <a href="\(base)/tenants">All tenants</a></p>
                """, notFound: true)
        }
        let laneRows = lanes.map { lane -> HTML in
            """
            <tr><td>\(lane.lane.rawValue)</td><td class="n">\(Layout.count(lane.ready, beyondLimit: lane.readyBeyondLimit))</td>\
            <td class="n">\(Layout.count(lane.running)) / \(lane.maxRunning)</td><td class="n">\(lane.weight.map { String($0) } ?? "–")</td>\
            <td>\(lane.paused ? "paused" : "")</td>\
            <td class="n">\(Layout.count(lane.dead, beyondLimit: lane.deadBeyondLimit))</td><td class="n">\(Layout.duration(lane.oldestReadySeconds))</td>\
            <td class="n">\(Layout.count(Int64(lane.completedPerMinute.rounded())))</td>\(pauseButton(lane))</tr>
            """
        }
        let waitingRows = waiting.map { job -> HTML in
            """
            <tr><td class="n">\(job.id)</td><td>\(job.projection)</td><td><code>\(job.streamId)</code></td><td>\(job.lane.rawValue)</td>\
            <td class="n">\(job.attempts)</td><td class="n">\(Layout.duration(job.waitedSeconds))</td></tr>
            """
        }
        let waitingList: HTML = waiting.isEmpty
            ? "<p class=\"muted\">No job has waited \(Layout.duration(Double(longWait.components.seconds))) or more.</p>"
            : """
                <table><thead><tr><th class="n">job</th><th>projection</th><th>stream</th><th>lane</th><th class="n">attempts</th>\
                <th class="n">waiting for</th></tr></thead><tbody>\(waitingRows)</tbody></table>
                """
        let deadList: HTML = dead.isEmpty
            ? #"<p class="muted">No dead jobs.</p>"#
            : DeadJobsPage.table(dead, base: base, forms: forms)
        return Page(title: "Tenant \(partition)", section: .tenants, body: """
            <h1>Tenant <code>\(partition)</code></h1>
            <table><thead><tr><th>lane</th><th class="n">ready</th><th class="n">running / cap</th><th class="n">weight</th><th></th><th class="n">dead</th>\
            <th class="n">oldest ready</th><th class="n">done / min</th>\(forms == nil ? "" : "<th></th>")</tr></thead><tbody>\(laneRows)</tbody></table>
            \(tenantForms)
            <h2>Streams waiting \(Layout.duration(Double(longWait.components.seconds))) or more</h2>
            \(waitingList)
            <h2>Dead jobs</h2>
            \(deadForms)
            \(deadList)
            """)
    }

    private func pauseButton(_ lane: FleetStatus.Lane) -> HTML {
        guard let forms else { return "" }
        let fields = [("tenant", partition), ("lane", lane.lane.rawValue), ("paused", lane.paused ? "false" : "true")]
        return "<td>\(forms.button(lane.paused ? "Resume" : "Pause", action: "quota", fields: fields))</td>"
    }

    /// The cap and weight of a lane (or both), and a backfill of the tenant.
    private var tenantForms: HTML {
        guard let forms else { return "" }
        let lanes: HTML = #"<select name="lane" aria-label="lane"><option value="both">both lanes</option><option value="live">live</option><option value="backfill">backfill</option></select>"#
        let options = (["all"] + projections).map { key -> HTML in "<option value=\"\(key)\">\(key == "all" ? "every projection" : key)</option>" }
        return """
            <div class="actions">
            \(forms.form("Set", action: "quota", fields: [("tenant", partition)], inputs: """
                \(lanes)<input name="max_running" inputmode="numeric" placeholder="cap" aria-label="cap (most running)">\
                <input name="weight" inputmode="numeric" placeholder="weight" aria-label="weight">
                """))
            \(forms.form("Backfill", action: "backfill", fields: [("tenant", partition)], inputs: "<select name=\"projection\" aria-label=\"projection\">\(options)</select>"))
            </div>
            """
    }

    /// Retry or purge every dead job of the tenant.
    private var deadForms: HTML {
        guard let forms, !dead.isEmpty else { return "" }
        return """
            <div class="actions">\(forms.button("Retry all of \(partition)", action: "retry", fields: [("tenant", partition)]))\
            \(forms.button("Purge all of \(partition)", action: "purge", fields: [("tenant", partition)], confirm: "Delete every dead job of \(partition)?", tone: "bad"))</div>
            """
    }
}
