import EventFleetJobs
import Foundation

/// One tenant: its lanes and its dead jobs with their errors.
struct TenantPage {
    let partition: String
    let status: FleetStatus
    let dead: [DeadJob]
    let waiting: [WaitingJob]
    let longWait: Duration
    let base: String

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
            <tr><td>\(lane.lane.rawValue)</td><td class="n">\(Layout.count(lane.ready))</td>\
            <td class="n">\(Layout.count(lane.running)) / \(lane.maxRunning)</td><td class="n">\(lane.weight.map { String($0) } ?? "–")</td>\
            <td>\(lane.paused ? "paused" : "")</td>\
            <td class="n">\(Layout.count(lane.dead))</td><td class="n">\(Layout.duration(lane.oldestReadySeconds))</td>\
            <td class="n">\(Layout.count(Int64(lane.completedPerMinute.rounded())))</td></tr>
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
            : DeadJobsPage.table(dead)
        return Page(title: "Tenant \(partition)", section: .tenants, body: """
            <h1>Tenant <code>\(partition)</code></h1>
            <table><thead><tr><th>lane</th><th class="n">ready</th><th class="n">running / cap</th><th class="n">weight</th><th></th><th class="n">dead</th>\
            <th class="n">oldest ready</th><th class="n">done / min</th></tr></thead><tbody>\(laneRows)</tbody></table>
            <h2>Streams waiting \(Layout.duration(Double(longWait.components.seconds))) or more</h2>
            \(waitingList)
            <h2>Dead jobs</h2>
            \(deadList)
            """)
    }
}
