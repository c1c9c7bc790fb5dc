import EventFleetCLI
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// `eventfleet-bench` stopped half-way (Ctrl-C, `timeout`) leaves nothing running and nothing behind.
@Suite("Bench interruption", .exclusive, .timeLimit(.minutes(3)))
struct BenchInterruptionTests {
    /// The bench schemas on the server.
    private func benchSchemas() async throws -> Set<String> {
        try await TestDatabase.withSchema(migrate: false) { schema in
            var names = Set<String>()
            for name in try await schema.rows("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench\\_%'", as: String.self) {
                names.insert(name)
            }
            return names
        }
    }

    /// The processes whose parent is `pid`.
    private func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let child = Int32(entry),
                  let status = try? String(contentsOfFile: "/proc/\(entry)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("PPid:") }),
                  Int32(line.dropFirst("PPid:".count).trimmingCharacters(in: .whitespaces)) == pid
            else { return nil }
            return child
        }
    }

    /// Whether `pid` is still a live process (a zombie, already exited, does not count).
    private func isAlive(_ pid: Int32) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
        return !status.contains("State:\tZ")
    }

    @Test("SIGINT during the catch-up stops the scheduler and worker processes and drops the bench schema")
    func interruptedCatchUp() async throws {
        let before = try await benchSchemas()
        // One slow worker, so the catch-up is still running when the signal comes.
        let bench = try ChildProcess(
            try builtProduct("eventfleet-bench"),
            arguments: ["--quick", "--only", "catchup", "--catch-up-workers", "1", "--worker-concurrency", "1", "--jobs-per-transaction", "1"],
            environment: childEnvironment(url: try TestDatabase.baseURL()), error: .capture
        )
        var fleet: [Int32] = []
        try await waitUntil(timeout: .seconds(90), "the bench has started its scheduler and worker") {
            fleet = children(of: bench.pid)
            return fleet.count >= 2
        }
        let created = try await benchSchemas().subtracting(before)
        #expect(created.count == 1, "the run's schema: \(created)")

        bench.signal(SIGINT)
        let status = try await bench.exit(within: .seconds(60))
        let survivors = fleet.filter(isAlive)
        // Left running, they would also hold the bench's standard error open.
        for pid in survivors { kill(pid, SIGKILL) }
        let output = await bench.capturedError()
        #expect(status == .exited(128 + SIGINT), "\(output)")
        #expect(survivors.isEmpty, "fleet processes still running after the bench stopped: \(survivors)")
        let left = try await benchSchemas().intersection(created)
        #expect(left.isEmpty, "the bench schema was not dropped")
        for schema in left {
            try await TestDatabase.withSchema(migrate: false) { admin in
                try await admin.execute("DROP SCHEMA IF EXISTS \(unescaped: "\"\(schema)\"") CASCADE")
            }
        }
    }
}
