import EventFleetCore
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import Testing

/// Hostile input given to the `eventfleet` binary: refused with exit code 2 and a message naming
/// the input, or exit 1 for the database, and nothing written.
@Suite("Hostile input: the eventfleet CLI")
struct HostileInputCLITests {
    @Test("--data bytes that are not UTF-8 are refused, not repaired into U+FFFD")
    func invalidUTF8Data() async throws {
        try await TestDatabase.withSchema { schema in
            // Swift strings cannot hold the byte, so a shell puts it on the command line.
            let run = try await runProcess(
                URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", #"exec "$0" append --stream s --type A --data "$(printf '{"a":"\377"}')""#, try builtProduct("eventfleet").path],
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
            let run = try await runProcess(
                try builtProduct("eventfleet"), arguments: ["append"] + arguments, environment: childEnvironment(url: schema.url)
            )
            #expect(run.status == 2, "\(run.stderr)")
            #expect(run.stderr.contains(message), "\(run.stderr)")
            #expect(try await schema.count("SELECT count(*) FROM ef_streams") == 0)
            #expect(try await schema.count("SELECT count(*) FROM ef_messages") == 0)
        }
    }

    @Test("Int64.max as the expected version is a conflict (exit 3) that creates nothing")
    func maximalExpectedVersion() async throws {
        try await TestDatabase.withSchema { schema in
            let run = try await runProcess(
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
        let run = try await runProcess(
            try builtProduct("eventfleet"), arguments: ["read", "--stream", "s"], environment: childEnvironment(url: url)
        )
        #expect(clock.now - start < .seconds(15))
        #expect(run.status == 1, "\(run.stderr)")
        #expect(run.stderr.contains("password authentication failed"), "\(run.stderr)")
        #expect(run.stderr.contains(base.target), "\(run.stderr)")
        #expect(!run.stderr.contains(password) && !run.stdout.contains(password))
    }
}
