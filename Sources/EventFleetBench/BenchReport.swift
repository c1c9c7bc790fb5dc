import Foundation

/// One line of the results: EventFleet's figure, its raw baseline's, and the ratio between them.
struct BenchRow: Codable, Sendable {
    /// The workload number and name, e.g. `1 append`.
    var workload: String
    /// Which configuration, e.g. `new streams, 4 writers`.
    var variant: String
    /// The unit of `value` and `baseline`, e.g. `events/s`.
    var unit: String
    var value: Double
    var baseline: Double?
    /// `value / baseline` for throughputs.
    var ratio: Double?
    var p50Milliseconds: Double?
    var p99Milliseconds: Double?
    var baselineP50Milliseconds: Double?
    var baselineP99Milliseconds: Double?
    /// The issue's target for this figure, in words, and whether the run met it.
    var target: String?
    var targetMet: Bool?
    var note: String?
}

/// The whole run: where it ran and every row.
struct BenchReport: Codable, Sendable {
    var mode: String
    var started: Date
    var finished: Date?
    var host: String
    var processors: Int
    var memoryGiB: Double
    var serverVersion: String
    /// The 1-minute load average when the run started and ended: other work on the machine.
    var loadAverageStart: Double?
    var loadAverageEnd: Double?
    var rows: [BenchRow] = []

    /// The machine's 1-minute load average.
    static func loadAverage() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
        return text.split(separator: " ").first.flatMap { Double($0) }
    }

    mutating func add(_ row: BenchRow) {
        rows.append(row)
        print(Self.format(row))
    }

    /// The table, one row per line, in the order the rows were measured.
    func table() -> String {
        var lines = [
            "EventFleet bench (\(mode)): \(processors) cores, \(String(format: "%.0f", memoryGiB)) GiB, \(serverVersion); "
                + "load average \(loadAverageStart.map { String(format: "%.1f", $0) } ?? "?") at the start, "
                + "\(loadAverageEnd.map { String(format: "%.1f", $0) } ?? "?") at the end",
            Self.header,
            String(repeating: "-", count: Self.header.count),
        ]
        lines += rows.map(Self.format)
        return lines.joined(separator: "\n")
    }

    static let header = pad("workload", 14) + pad("variant", 34) + pad("EventFleet", 18) + pad("baseline", 18) + pad("ratio", 7)
        + pad("p50 / p99 ms", 16) + pad("baseline p50 / p99", 20) + "target"

    static func format(_ row: BenchRow) -> String {
        var line = pad(row.workload, 14) + pad(row.variant, 34) + pad("\(number(row.value)) \(row.unit)", 18)
        line += pad(row.baseline.map { "\(number($0)) \(row.unit)" } ?? "", 18)
        line += pad(row.ratio.map { String(format: "%.2f", $0) } ?? "", 7)
        line += pad(percentiles(row.p50Milliseconds, row.p99Milliseconds), 16)
        line += pad(percentiles(row.baselineP50Milliseconds, row.baselineP99Milliseconds), 20)
        if let target = row.target {
            line += "\(target) \(row.targetMet == true ? "met" : "MISSED")"
        }
        if let note = row.note { line += (row.target == nil ? "" : "; ") + note }
        return line
    }

    private static func percentiles(_ p50: Double?, _ p99: Double?) -> String {
        guard let p50, let p99 else { return "" }
        return "\(milliseconds(p50)) / \(milliseconds(p99))"
    }

    private static func milliseconds(_ value: Double) -> String {
        value < 10 ? String(format: "%.2f", value) : String(format: "%.0f", value)
    }

    private static func number(_ value: Double) -> String {
        if value >= 100 { return String(Int(value.rounded())) }
        return String(format: value >= 10 ? "%.1f" : "%.2f", value)
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    /// Writes the report as JSON.
    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}
