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
    /// `true` on the rows of the pooler comparison (`--pooler-url`): `value` was measured through
    /// the pooler and `baseline` is the same work on direct connections, so `ratio` is pooled /
    /// direct.
    var pooledAgainstDirect: Bool?
}

extension BenchRow {
    /// A row of the pooler comparison: the same work through the pooler and on direct connections,
    /// measured direct, pooled, pooled, direct.
    ///
    /// - Parameters:
    ///   - variant: The configuration, as in the direct row it follows.
    ///   - latency: The operations' latencies through the pooler and direct, when the workload
    ///     times each operation.
    static func pooler(
        workload: String, variant: String, unit: String, pooled: Double, direct: Double,
        latency: (pooled: LatencyHistogram, direct: LatencyHistogram)? = nil, note: String
    ) -> BenchRow {
        BenchRow(
            workload: workload, variant: "\(variant): pooled / direct", unit: unit, value: pooled, baseline: direct,
            ratio: pooled / direct,
            p50Milliseconds: latency?.pooled.milliseconds(atPercentile: 50), p99Milliseconds: latency?.pooled.milliseconds(atPercentile: 99),
            baselineP50Milliseconds: latency?.direct.milliseconds(atPercentile: 50),
            baselineP99Milliseconds: latency?.direct.milliseconds(atPercentile: 99),
            note: note, pooledAgainstDirect: true
        )
    }
}

/// One workload's pooled / direct ratios, summed up: their geometric mean and their range.
struct PoolerRatio: Codable, Sendable {
    var workload: String
    var rows: Int
    var geometricMean: Double
    var lowest: Double
    var highest: Double
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
    /// The pooler of the pooled rows (`--pooler-url`, without the password); `nil` when the run
    /// measured direct connections only.
    var pooler: String?
    var rows: [BenchRow] = []
    /// Each workload's pooled / direct ratios, set by `summarizePooler()` at the end of a run
    /// through a pooler.
    var poolerRatios: [PoolerRatio]?

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
        if let poolerRatios, !poolerRatios.isEmpty {
            lines += [
                "",
                "Through the pooler, pooled / direct: each workload's geometric mean, lowest and highest row "
                    + "(events/s and jobs/s: below 1 is slower through the pooler; freshness in ms: above 1 is slower)",
            ]
            lines += poolerRatios.map { ratio in
                Self.pad(ratio.workload, 14)
                    + String(format: "%.2f (%.2f to %.2f over %d rows)", ratio.geometricMean, ratio.lowest, ratio.highest, ratio.rows)
            }
            if let pooler { lines.append("pooler: \(pooler)") }
        }
        return lines.joined(separator: "\n")
    }

    /// Sets `poolerRatios` from the rows of the pooler comparison, one per workload in the order
    /// measured.
    mutating func summarizePooler() {
        let pooled = rows.filter { $0.pooledAgainstDirect == true }
        guard !pooled.isEmpty else { return }
        var workloads: [String] = []
        for row in pooled where !workloads.contains(row.workload) { workloads.append(row.workload) }
        poolerRatios = workloads.compactMap { workload in
            let ratios = pooled.filter { $0.workload == workload }.compactMap(\.ratio).filter { $0 > 0 && $0.isFinite }
            guard let lowest = ratios.min(), let highest = ratios.max() else { return nil }
            let geometricMean = exp(ratios.map { log($0) }.reduce(0, +) / Double(ratios.count))
            return PoolerRatio(workload: workload, rows: ratios.count, geometricMean: geometricMean, lowest: lowest, highest: highest)
        }
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
