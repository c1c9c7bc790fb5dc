import EventFleetCLI
import EventFleetCore
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import Testing

/// Hostile input given to the `eventfleet` binary: refused with exit code 2 and a message naming
/// the input, or exit 1 for the database, and nothing written.
@Suite("Hostile input: the eventfleet CLI", .exclusive)
struct HostileInputCLITests {
    @Test("--data bytes that are not UTF-8 are refused, not repaired into U+FFFD")
    func invalidUTF8Data() async throws {
        try await TestDatabase.withSchema { schema in
            // Swift strings cannot hold the byte, so a shell puts it on the command line.
            let run = try await ChildProcess.run(
                "/bin/sh",
                arguments: ["-c", #"exec "$0" append --stream s --type A --data "$(printf '{"a":"\377"}')""#, try builtProduct("eventfleet")],
                environment: childEnvironment(url: schema.url)
            )
            #expect(run.status == 2, "\(run.stderr)")
            #expect(run.stderr.contains("the value of --data is not valid UTF-8"), "\(run.stderr)")
            #expect(try await schema.store.readStream("s", options: ReadStreamOptions()).streamExists == false)
        }
    }

    @Test(
        "JSON the database cannot hold, deep nesting and oversized ids exit 2 naming the problem; nothing is written",
        arguments: [
            (["--stream", "s", "--type", "A", "--data", #"{"a":"\u0000"}"#], #"\u0000"#),
            (["--stream", "s", "--type", "A", "--data", "{}", "--metadata", #"{"m":"\u0000"}"#], #"\u0000"#),
            (["--stream", "s", "--type", "A", "--data", #"{"a":"# + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}"], "invalid data"),
            (["--stream", String(repeating: "s", count: 10_000), "--type", "A", "--data", "{}"], "invalid streamId: is 10000 bytes long"),
            (["--stream", "s", "--type", String(repeating: "🛒", count: 10_000), "--data", "{}"], "invalid type: is 40000 bytes long"),
            (["--stream", "s", "--type", "A", "--data", "{}", "--expected-version", "9223372036854775808"], "expected-version"),
        ]
    )
    func refusedInput(arguments: [String], message: String) async throws {
        try await TestDatabase.withSchema { schema in
            let run = try await ChildProcess.run(
                try builtProduct("eventfleet"), arguments: ["append"] + arguments, environment: childEnvironment(url: schema.url)
            )
            #expect(run.status == 2, "\(run.stderr)")
            #expect(run.stderr.contains(message), "\(run.stderr)")
            #expect(try await schema.count("SELECT count(*) FROM ef_streams") == 0)
            #expect(try await schema.count("SELECT count(*) FROM ef_messages") == 0)
        }
    }

    @Test("read prints hostile ids and data as valid JSON lines, one per event")
    func readHostile() async throws {
        try await TestDatabase.withSchema { schema in
            let name = "line\nbreak \"quoted\" \\ \u{2028} \u{1} 🛒 '; --"
            let data = #"{"text":"a\nb\u2028c\u0001 \"q\" \\","big":123456789012345678901234567890}"#
            try await schema.store.appendToStream(
                name, messages: [ProposedMessage(type: name, data: Data(data.utf8), metadata: Data(#"{"by":"\u00e9"}"#.utf8))],
                options: AppendOptions(partition: name)
            )
            let run = try await ChildProcess.run(
                try builtProduct("eventfleet"), arguments: ["read", "--stream", name, "--partition", name],
                environment: childEnvironment(url: schema.url)
            )
            #expect(run.status == 0, "\(run.stderr)")
            let lines = run.stdout.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(lines.count == 1, "\(run.stdout)")
            let line = try #require(lines.first)
            let event = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            for key in ["streamId", "partition", "type"] {
                #expect((event[key] as? String).map { Array($0.utf8) } == Array(name.utf8), "\(key)")
            }
            let expected = try #require(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? NSDictionary)
            #expect((event["data"] as? NSDictionary) == expected)
            #expect(line.contains("123456789012345678901234567890"), "numbers keep their digits")
            #expect((event["metadata"] as? [String: String]) == ["by": "\u{E9}"])
        }
    }

    @Test(
        "read refuses positions and counts below their minimum with exit 2 naming the option",
        arguments: [(["--from", "0"], "from"), (["--from=-9223372036854775808"], "from"), (["--max-count=-1"], "maxCount"), (["--to", "0"], "to")]
    )
    func readBounds(arguments: [String], field: String) async throws {
        try await TestDatabase.withSchema { schema in
            let run = try await ChildProcess.run(
                try builtProduct("eventfleet"), arguments: ["read", "--stream", "s"] + arguments, environment: childEnvironment(url: schema.url)
            )
            #expect(run.status == 2, "\(run.stderr)")
            #expect(run.stderr.contains("invalid \(field)"), "\(run.stderr)")
        }
    }

    @Test("worker --projections naming a projection the binary does not have exits 2 naming it and the known ones, and registers nothing")
    func unknownWorkerProjection() async throws {
        try await TestDatabase.withSchema { schema in
            let run = try await ChildProcess.run(
                try builtProduct("eventfleet"), arguments: ["worker", "--projections", "carts,nosuch"], environment: childEnvironment(url: schema.url)
            )
            #expect(run.status == 2, "\(run.stderr)")
            #expect(run.stderr.contains("nosuch") && run.stderr.contains("carts"), "\(run.stderr)")
            #expect(try await schema.count("SELECT count(*) FROM ef_workers") == 0)
        }
    }

    @Test("Int64.max as the expected version is a conflict (exit 3) that creates nothing")
    func maximalExpectedVersion() async throws {
        try await TestDatabase.withSchema { schema in
            let run = try await ChildProcess.run(
                try builtProduct("eventfleet"),
                arguments: ["append", "--stream", "s", "--type", "A", "--data", "{}", "--expected-version", "9223372036854775807"],
                environment: childEnvironment(url: schema.url)
            )
            #expect(run.status == 3, "\(run.stderr)")
            #expect(run.stderr.contains("expected 9223372036854775807, actual 0"), "\(run.stderr)")
            #expect(try await schema.count("SELECT count(*) FROM ef_streams") == 0)
        }
    }

    @Test("a wrong password exits 1 promptly, names the failure and never shows the password")
    func wrongPassword() async throws {
        let base = try DatabaseConfiguration(url: TestDatabase.baseURL())
        let password = "s3cret-but-wrong"
        let url = "postgres://\(base.username):\(password)@\(base.target)/\(base.database ?? "")?sslmode=disable"
        let clock = ContinuousClock()
        let start = clock.now
        let run = try await ChildProcess.run(
            try builtProduct("eventfleet"), arguments: ["read", "--stream", "s"], environment: childEnvironment(url: url)
        )
        #expect(clock.now - start < .seconds(15))
        #expect(run.status == 1, "\(run.stderr)")
        #expect(run.stderr.contains("password authentication failed"), "\(run.stderr)")
        #expect(run.stderr.contains(base.target), "\(run.stderr)")
        #expect(!run.stderr.contains(password) && !run.stdout.contains(password))
    }
}
