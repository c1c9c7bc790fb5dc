import EventFleetJobs
import Foundation

/// A small line chart drawn on the server as SVG: one value per minute of a window, `nil` for a
/// minute without one, which the line leaves as a gap.
struct Chart {
    /// How the chart's values read.
    enum Unit {
        case count
        case perMinute
        case seconds

        func format(_ value: Double) -> String {
            switch self {
            case .count: Layout.count(Int64(value.rounded()))
            case .perMinute: Layout.count(Int64(value.rounded())) + "/min"
            // Below a second a tenth counts: a lag of 0.4 s is not one of 0 s.
            case .seconds where value > 0 && value < 1: String(format: "%.1f s", value)
            case .seconds: Layout.duration(value)
            }
        }

        /// The axis's label of `value`: short, since the chart's title names the unit.
        func axis(_ value: Double) -> String {
            self == .perMinute ? Self.count.format(value) : format(value)
        }
    }

    /// One line: its name, its style (`s1`, `s2`: the stylesheet's colours) and its values, oldest
    /// minute first.
    struct Series {
        var name: String
        var style: String
        var values: [Double?]
    }

    /// Names the chart's elements (`chart-<id>-title`) and marks it (`data-chart`).
    var id: String
    var title: String
    var unit: Unit
    var minutes: Int
    var series: [Series]

    // The drawing's coordinates: the plot and, left of and below it, the axis labels.
    private static let width = 320.0, height = 132.0
    private static let left = 56.0, right = 314.0, top = 8.0, bottom = 110.0

    var html: HTML {
        let highest = series.flatMap { $0.values.compactMap(\.self) }.max() ?? 0
        let scale = highest > 0 ? highest : 1
        let lines = series.flatMap { line in
            Self.runs(line.values).map { run in draw(run, style: line.style, scale: scale) }
        }
        let legend = series.map { line -> HTML in "<span class=\"item\"><span class=\"key \(line.style)\"></span>\(line.name)</span>" }
        let summary = series.map { line -> String in
            let known = line.values.compactMap(\.self)
            guard let latest = known.last else { return "\(line.name): no value" }
            return "\(line.name): latest \(unit.format(latest)), highest \(unit.format(known.max() ?? latest))"
        }
        let gaps = series.contains { $0.values.contains(nil) } ? " Minutes without a value are gaps." : ""
        let description = summary.joined(separator: "; ") + "." + gaps
        let titleID = "chart-\(id)-title", descriptionID = "chart-\(id)-desc"
        return """
            <figure class="chart">
            <figcaption>\(title)<span class="legend">\(legend)</span></figcaption>
            <svg viewBox="0 0 \(Self.number(Self.width)) \(Self.number(Self.height))" role="img" aria-labelledby="\(titleID) \(descriptionID)" data-chart="\(id)">
            <title id="\(titleID)">\(title), the last \(minutes) minutes</title>
            <desc id="\(descriptionID)">\(description)</desc>
            <line class="axis" x1="\(Self.number(Self.left))" y1="\(Self.number(Self.bottom))" x2="\(Self.number(Self.right))" y2="\(Self.number(Self.bottom))"/>
            <line class="axis" x1="\(Self.number(Self.left))" y1="\(Self.number(Self.top))" x2="\(Self.number(Self.left))" y2="\(Self.number(Self.bottom))"/>
            <text x="\(Self.number(Self.left - 4))" y="\(Self.number(Self.top + 4))" text-anchor="end">\(unit.axis(highest))</text>
            <text x="\(Self.number(Self.left - 4))" y="\(Self.number(Self.bottom))" text-anchor="end">0</text>
            <text x="\(Self.number(Self.left))" y="\(Self.number(Self.height - 6))">\(minutes) min ago</text>
            <text x="\(Self.number(Self.right))" y="\(Self.number(Self.height - 6))" text-anchor="end">now</text>
            \(lines)
            </svg>
            </figure>
            """
    }

    /// A run of minutes with values: a line, or a dot for a minute alone between gaps.
    private func draw(_ run: [(index: Int, value: Double)], style: String, scale: Double) -> HTML {
        let points = run.map { (x: x($0.index), y: Self.bottom - (Self.bottom - Self.top) * $0.value / scale) }
        if points.count == 1, let point = points.first {
            return "<circle class=\"\(style)\" cx=\"\(Self.number(point.x))\" cy=\"\(Self.number(point.y))\" r=\"2\"/>"
        }
        let coordinates = points.map { "\(Self.number($0.x)),\(Self.number($0.y))" }.joined(separator: " ")
        return "<polyline class=\"\(style)\" points=\"\(coordinates)\"/>"
    }

    private func x(_ index: Int) -> Double {
        guard minutes > 1 else { return Self.right }
        return Self.left + (Self.right - Self.left) * Double(index) / Double(minutes - 1)
    }

    /// The runs of consecutive minutes that have values.
    static func runs(_ values: [Double?]) -> [[(index: Int, value: Double)]] {
        var runs: [[(index: Int, value: Double)]] = []
        var run: [(index: Int, value: Double)] = []
        for (index, value) in values.enumerated() {
            if let value {
                run.append((index, value))
            } else if !run.isEmpty {
                runs.append(run)
                run = []
            }
        }
        if !run.isEmpty { runs.append(run) }
        return runs
    }

    /// A coordinate with one decimal.
    private static func number(_ value: Double) -> String {
        String(format: "%.1f", value)
    }
}

extension Chart {
    /// The overview's charts of the fleet's last minutes: its backlog, throughput and lag.
    static func overview(_ history: FleetHistory) -> [Chart] {
        var slots = [FleetHistory.Minute?](repeating: nil, count: history.length)
        for minute in history.minutes {
            let index = Int((minute.minute.timeIntervalSince(history.start) / 60).rounded())
            if slots.indices.contains(index) { slots[index] = minute }
        }
        let points = slots.map { $0?.point }
        // The minute in progress has counted only part of its jobs: its throughput is left out
        // rather than drawn as a drop.
        let done = slots.enumerated().map { index, minute in index == slots.count - 1 ? nil : minute.map { Double($0.completed) } }
        let length = history.length
        return [
            Chart(id: "backlog", title: "Backlog", unit: .count, minutes: length, series: [
                Series(name: "ready", style: "s1", values: points.map { $0.map { Double($0.ready) } }),
                Series(name: "running", style: "s2", values: points.map { $0.map { Double($0.running) } }),
            ]),
            Chart(id: "throughput", title: "Throughput per minute", unit: .perMinute, minutes: length, series: [
                Series(name: "jobs done", style: "s1", values: done),
                Series(name: "events appended", style: "s2", values: slots.map { $0?.appended.map(Double.init) }),
            ]),
            Chart(id: "lag", title: "Lag (the oldest wait)", unit: .seconds, minutes: length, series: [
                Series(name: "event not scheduled", style: "s1", values: points.map { $0.map(\.lagSeconds) }),
                Series(name: "ready job", style: "s2", values: points.map { $0.map { $0.oldestReadySeconds ?? 0 } }),
            ]),
            Chart(id: "lag-events", title: "Scheduler lag (events)", unit: .count, minutes: length, series: [
                Series(name: "events behind", style: "s1", values: points.map { $0.map { Double($0.lagEvents) } }),
            ]),
        ]
    }
}
