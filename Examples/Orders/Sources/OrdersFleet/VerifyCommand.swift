import ArgumentParser
import EventFleetCLI
import EventFleetCore
import EventFleetPostgres

/// `verify`: every order stream's row equals the fold of the stream (state and position).
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check every order row against its stream; exit 1 while any differs."
    )

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Seconds to keep checking until every row is right (0: check once).") var wait = 0

    func run() async throws {
        let projection = try OrdersReadModel.projection(table: OrdersReadModel.tableName())
        let deadline = ContinuousClock.now + .seconds(wait)
        let (checked, wrong) = try await database.withStore { store in
            while true {
                let streams = try await orderStreams(in: store)
                var wrong: [String] = []
                for (partition, stream) in streams {
                    let folded = try await store.aggregateStream(
                        stream, as: OrderEvent.self, options: AggregateStreamOptions(partition: partition),
                        evolve: Order.evolve, initialState: Order.initial
                    )
                    let row = try await projection.load(streamId: stream, partition: partition, store: store)
                    if row?.state != folded.state || row?.lastStreamPosition != folded.currentStreamVersion {
                        wrong.append("\(partition)/\(stream): row at \(row.map { String($0.lastStreamPosition) } ?? "none"), stream at \(folded.currentStreamVersion)")
                    }
                }
                if wrong.isEmpty || ContinuousClock.now >= deadline { return (streams.count, wrong) }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        guard wrong.isEmpty else {
            print("\(wrong.count) of \(checked) order rows differ from their streams:")
            for line in wrong.prefix(20) { print("  \(line)") }
            throw ExitCode.failure
        }
        print("verified \(checked) order rows: each equals its stream")
    }

    /// Every order stream, from the global log's `OrderPlaced` events.
    private func orderStreams(in store: PostgresEventStore) async throws -> [(String, String)] {
        var streams: [(String, String)] = []
        var checkpoint = GlobalCheckpoint.start
        while true {
            let batch = try await store.readAll(
                after: checkpoint, options: ReadAllOptions(batchSize: 1_000, types: [OrderPlaced.eventType], includePayload: false)
            )
            streams += batch.messages.map { ($0.partition, $0.streamId) }
            checkpoint = batch.checkpoint
            if batch.messages.isEmpty { return streams }
        }
    }
}
