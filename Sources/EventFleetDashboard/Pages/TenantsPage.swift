import EventFleetJobs
import Hummingbird

/// One row per tenant and lane: ready, running against the cap, paused, dead, the oldest ready
/// job's wait and jobs done per minute; sortable, searchable and paginated by tenant.
struct TenantsPage {
    /// What the list shows: `?q=` (a substring of the tenant's name), `?sort=`, `?page=`.
    struct Query: Sendable {
        enum Sort: String, CaseIterable, Sendable {
            case tenant, ready, running, dead, oldest, done
        }

        var search: String?
        var sort: Sort
        var page: Int

        init(search: String? = nil, sort: Sort = .tenant, page: Int = 1) {
            self.search = search
            self.sort = sort
            self.page = page
        }

        init(_ parameters: Parameters) {
            let search = parameters.get("q").flatMap { $0.isEmpty ? nil : $0 }
            self.init(
                search: search, sort: parameters.get("sort").flatMap(Sort.init(rawValue:)) ?? .tenant,
                page: max(1, parameters.get("page").flatMap(Int.init) ?? 1)
            )
        }
    }

    let status: FleetStatus
    let query: Query
    let pageSize: Int
    let base: String

    var page: Page {
        var byTenant = Dictionary(grouping: status.lanes, by: \.partition)
        if let search = query.search?.lowercased() {
            byTenant = byTenant.filter { $0.key.lowercased().contains(search) }
        }
        let sorted = byTenant.sorted { left, right in
            let (a, b) = (measure(left.value), measure(right.value))
            return a == b ? left.key < right.key : a > b
        }
        let pages = max(1, (sorted.count + pageSize - 1) / pageSize)
        let current = min(query.page, pages)
        let shown = sorted.dropFirst((current - 1) * pageSize).prefix(pageSize)
        let rows = shown.flatMap { partition, lanes in
            lanes.sorted { $0.lane.rawValue > $1.lane.rawValue }.map { lane -> HTML in
                let paused: HTML = lane.paused ? #"<span class="warn">paused</span>"# : ""
                let dead: HTML = lane.dead > 0 ? "<span class=\"bad\">\(Layout.count(lane.dead, beyondLimit: lane.deadBeyondLimit))</span>" : "0"
                return """
                    <tr><td><a href="\(Layout.tenantPath(partition, base: base))">\(partition)</a></td><td>\(lane.lane.rawValue)</td>\
                    <td class="n">\(Layout.count(lane.ready, beyondLimit: lane.readyBeyondLimit))</td><td class="n">\(Layout.count(lane.running)) / \(lane.maxRunning)</td>\
                    <td class="n">\(lane.weight.map { String($0) } ?? "–")</td>\
                    <td>\(paused)</td><td class="n">\(dead)</td><td class="n">\(Layout.duration(lane.oldestReadySeconds))</td>\
                    <td class="n">\(Layout.count(Int64(lane.completedPerMinute.rounded())))</td></tr>
                    """
            }
        }
        let headers = [
            ("tenant", Query.Sort.tenant, ""), ("lane", nil, ""), ("ready", .ready, "n"), ("running / cap", .running, "n"), ("weight", nil, "n"), ("", nil, ""),
            ("dead", .dead, "n"), ("oldest ready", .oldest, "n"), ("done / min", .done, "n"),
        ].map { (label: String, sort: Query.Sort?, style: String) -> HTML in
            guard let sort else { return "<th class=\"\(style)\">\(label)</th>" }
            let link = base + "/tenants" + Layout.query([("q", query.search), ("sort", sort.rawValue)])
            let marker: HTML = sort == query.sort ? " ▾" : ""
            return "<th class=\"\(style)\"><a href=\"\(link)\">\(label)</a>\(marker)</th>"
        }
        var navigation: [HTML] = []
        if current > 1 {
            navigation.append("<a href=\"\(base + "/tenants" + Layout.query([("q", query.search), ("sort", query.sort.rawValue), ("page", String(current - 1))]))\">previous</a>")
        }
        navigation.append("<span>page \(current) of \(pages) · \(Layout.count(sorted.count)) tenant\(sorted.count == 1 ? "" : "s")</span>")
        if current < pages {
            navigation.append("<a href=\"\(base + "/tenants" + Layout.query([("q", query.search), ("sort", query.sort.rawValue), ("page", String(current + 1))]))\">next</a>")
        }
        let empty: HTML = rows.isEmpty
            ? (query.search == nil ? #"<p class="muted">No tenant has jobs or a quota yet.</p>"# : #"<p class="muted">No tenant matches.</p>"#)
            : ""
        return Page(title: "Tenants", section: .tenants, body: """
            <h1>Tenants</h1>
            <form class="filters" method="get" action="\(base)/tenants">
            <input type="search" name="q" value="\(query.search)" placeholder="tenant name contains" aria-label="search tenants">
            <input type="hidden" name="sort" value="\(query.sort.rawValue)">
            <button type="submit">Search</button></form>
            <table><thead><tr>\(headers)</tr></thead><tbody>\(rows)</tbody></table>
            \(empty)
            <div class="pages">\(navigation)</div>
            """)
    }

    /// What the list is sorted by, largest first (the tenant's name sorts by itself).
    private func measure(_ lanes: [FleetStatus.Lane]) -> Double {
        switch query.sort {
        case .tenant: 0
        case .ready: Double(lanes.reduce(0) { $0 + $1.ready })
        case .running: Double(lanes.reduce(0) { $0 + $1.running })
        case .dead: Double(lanes.reduce(0) { $0 + $1.dead })
        case .oldest: lanes.compactMap(\.oldestReadySeconds).max() ?? -1
        case .done: lanes.reduce(0) { $0 + $1.completedPerMinute }
        }
    }
}
