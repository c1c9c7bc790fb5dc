import EventFleetCore
import PostgresNIO

extension PostgresEventStore {
    /// Runs `body` in one transaction that holds the stream's lock: pessimistic command handling
    /// (`CommandConcurrency.pessimistic` in `EventFleetCore`) reads, decides and appends in it.
    ///
    /// The lock is a transaction-level advisory lock on a hash of the schema, the partition and the
    /// stream id (`pg_advisory_xact_lock`), taken before anything is read. It needs no row, so two
    /// first commands on a stream that does not exist yet take turns like any others, and the
    /// transaction's end releases it, whether `body` returned (commit) or threw (rollback). The
    /// store given to `body` reads and appends on the transaction's connection, through the same
    /// statements as the store itself; its appends notify listeners on commit.
    ///
    /// A command waits for the lock at most a minute (the server's `lock_timeout`, an error with
    /// SQLSTATE 55P03 after it). The server ends the transaction when it idles for half the
    /// statement deadline (`idle_in_transaction_session_timeout`, 5 s by default): a command holds the lock only while it decides, so a process frozen inside
    /// (SIGSTOP, a hung host) releases the stream in time for the commands waiting behind it.
    ///
    /// - Parameters:
    ///   - streamId: The stream, which need not exist.
    ///   - partition: Its partition.
    ///   - body: The work to do exclusively, given the store to read and append through.
    /// - Returns: What `body` returns, once the transaction has committed.
    /// - Throws: What `body` throws, unchanged (after the rollback), and `EventStoreError` for an
    ///   invalid stream id or partition and for the database's errors.
    public func withExclusiveAccess<T: Sendable>(
        toStream streamId: String,
        partition: String,
        _ body: (any EventStore) async throws -> T
    ) async throws -> T {
        try IdentifierValidation.validate(streamId, field: "streamId")
        try IdentifierValidation.validate(partition, field: "partition")
        let idleTimeout = (database.statementDeadline ?? .seconds(10)) / 2
        return try await database.transaction("exclusive stream access", idleTimeout: idleTimeout) { connection in
            try await StreamLock(schema: database.schema, partition: partition, streamId: streamId).take(on: connection)
            return try await body(ExclusiveStreamStore(store: self, connection: connection.connection))
        }
    }
}

/// The lock of one stream for the transaction that takes it (see `withExclusiveAccess`).
///
/// An advisory lock rather than the stream row's `FOR UPDATE`: a stream that does not exist yet
/// has no row to lock. Inserting its row first would give the lock a row, but a command that
/// decides nothing would then commit an empty stream (which reads as existing), every first
/// command would write a row before it knew it had anything to append, and stream rows would be
/// created in two places instead of only by `ef_append_to_stream`. The advisory lock writes
/// nothing and needs no row. The two-key form keeps these locks apart from the single-key ones
/// (the migrations' lock). Two streams whose hashes collide only take turns; the schema is hashed
/// in so that EventFleet schemas sharing a database do not.
struct StreamLock: Sendable {
    var schema: Schema
    var partition: String
    var streamId: String

    /// How long a command waits for the lock. A hot stream's commands queue for it, so the wait is
    /// the server's to bound (`lock_timeout`), not the statement deadline's: a queue of commands
    /// may take longer than any one statement should, and a connection that stops answering is
    /// still noticed, at this wait plus the deadline.
    static let wait: Duration = .seconds(60)

    func take(on connection: Database.Connection) async throws {
        let database = connection.database
        let waiting = Database.Connection(
            connection: connection.connection, database: database.withDeadline(database.statementDeadline.map { $0 + Self.wait })
        )
        _ = try await waiting.run(StreamLockStatement(
            scope: "\(schema.name ?? "")/\(partition)", streamId: streamId, lockTimeoutMilliseconds: Self.wait.milliseconds
        ))
    }
}

/// A store whose reads and appends run on one connection, inside the transaction of
/// ``PostgresEventStore/withExclusiveAccess(toStream:partition:_:)``.
struct ExclusiveStreamStore: EventStore {
    let store: PostgresEventStore
    let connection: PostgresConnection

    func appendToStream(_ streamId: String, messages: [ProposedMessage], options: AppendOptions) async throws -> AppendResult {
        try await store.appendToStream(streamId, messages: messages, options: options, connection: connection)
    }

    func readStream(_ streamId: String, options: ReadStreamOptions) async throws -> ReadStreamResult<RecordedMessage> {
        try await store.readStream(streamId, options: options, connection: connection)
    }

    /// The global log is read through the pool: it shows only committed appends, and its horizon
    /// needs a READ COMMITTED snapshot taken after its look at the appends in flight.
    func readAll(after checkpoint: GlobalCheckpoint, options: ReadAllOptions) async throws -> GlobalLogBatch {
        try await store.readAll(after: checkpoint, options: options)
    }

    func logHolds(scope: PartitionScope) async throws -> [LogHold] {
        try await store.logHolds(scope: scope)
    }

    /// Takes another stream's lock in the same transaction (the same stream's again is a no-op).
    func withExclusiveAccess<T: Sendable>(
        toStream streamId: String, partition: String, _ body: (any EventStore) async throws -> T
    ) async throws -> T {
        try IdentifierValidation.validate(streamId, field: "streamId")
        try IdentifierValidation.validate(partition, field: "partition")
        let database = store.database
        try await database.mapErrors("exclusive stream access") {
            try await StreamLock(schema: database.schema, partition: partition, streamId: streamId)
                .take(on: Database.Connection(connection: connection, database: database))
        }
        return try await body(self)
    }
}
