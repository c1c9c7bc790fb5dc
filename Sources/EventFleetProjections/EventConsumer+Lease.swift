import EventFleetCore
import EventFleetPostgres
import PostgresNIO

/// The lease that keeps one instance of a consumer active, and the checkpoint that goes with it.
struct ConsumerLease: Sendable {
    var fencingToken: Int64
    /// The checkpoint as stored, which the next commit moves by compare-and-set.
    var checkpoint: GlobalCheckpoint
    /// Where the next read starts: the stored checkpoint, or past it after reads that found nothing
    /// to handle (those move no row).
    var position: GlobalCheckpoint
    var renewedAt: ContinuousClock.Instant

    init(fencingToken: Int64, checkpoint: GlobalCheckpoint) {
        self.fencingToken = fencingToken
        self.checkpoint = checkpoint
        self.position = checkpoint
        self.renewedAt = .now
    }
}

extension EventConsumer {
    var leaseMilliseconds: Int64 { configuration.leaseDuration.milliseconds }

    private var subscriptions: SQLName { store.database.schema.ef_subscriptions }

    /// Takes the lease when it is free, expired or already ours; `nil` when another instance holds it.
    /// Taking it over bumps the fencing token, which invalidates the previous holder's writes.
    ///
    /// A leader frozen inside a page that moved its checkpoint holds the row's lock until the server
    /// ends its transaction (after the lease, see `inTransaction`). The takeover waits for that lock
    /// at most a third of the lease (`lock_timeout`) and then counts the lease as held, so the
    /// standby keeps polling, stays ready and stops on SIGTERM rather than hang in the wait.
    func acquireLease() async throws -> ConsumerLease? {
        do {
            return try await store.database.transaction("acquire consumer lease") { connection in
                try await connection.execute(
                    "SELECT set_config('lock_timeout', \(String(max(1, (configuration.leaseDuration / 3).milliseconds))), true)"
                )
                return try await takeLease(on: connection)
            }
        } catch where Self.isLockTimeout(error) {
            return nil
        }
    }

    /// Whether a mapped error is the server's `lock_not_available` (a `lock_timeout` ran out).
    static func isLockTimeout(_ error: any Error) -> Bool {
        if case .database(_, "55P03"?, _) = error as? EventStoreError { return true }
        return false
    }

    /// Takes the lease and reads the checkpoint. A row last moved by a release that checkpoints by
    /// (transaction id, global position) only, or moved by one since this release read it (a rolling
    /// deploy), starts from a position below every event its pair has not covered
    /// (`ef_log_position_after`), under the row's lock.
    private func takeLease(on connection: Database.Connection) async throws -> ConsumerLease? {
        let rows = try await connection.query("""
            INSERT INTO \(subscriptions) AS s (subscription_id, partition, version, owner, lease_expires_at, fencing_token,
                                               log_position, log_base_transaction_id, log_base_global_position)
            VALUES (\(configuration.name), \(configuration.scopeKey), \(configuration.version), \(configuration.instanceId),
                    clock_timestamp() + \(leaseMilliseconds) * interval '1 millisecond', 1, 0, '0', 0)
            ON CONFLICT (subscription_id, partition, version) DO UPDATE
               SET owner = EXCLUDED.owner,
                   lease_expires_at = EXCLUDED.lease_expires_at,
                   fencing_token = s.fencing_token + CASE WHEN s.owner IS DISTINCT FROM EXCLUDED.owner THEN 1 ELSE 0 END,
                   updated = now()
             WHERE s.owner IS NULL
                OR s.owner = EXCLUDED.owner
                OR s.lease_expires_at < clock_timestamp()
            RETURNING s.fencing_token, s.log_position, s.log_held_keys, s.log_held_positions,
                      (s.log_base_transaction_id, s.log_base_global_position)
                        IS NOT DISTINCT FROM (s.last_transaction_id, s.last_global_position)
            """)
        guard let row = rows.first else { return nil }
        let (token, position, keys, positions, isBase) = try row.decode((Int64, Int64?, [Int32], [Int64], Bool).self)
        if let position, isBase {
            let held = zip(keys, positions).map { GlobalCheckpoint.HeldPartition(key: $0, position: $1) }
            return ConsumerLease(fencingToken: token, checkpoint: GlobalCheckpoint(position: position, held: held))
        }
        let start = try await connection.value("start a consumer's checkpoint from its transaction-order pair", """
            SELECT c.log_position
              FROM \(store.database.schema.ef_convert_checkpoints)(\(configuration.name), \(configuration.scopeKey), \(configuration.version)) c
            """, as: Int64.self)
        logger.info("started the checkpoint in position order from the transaction-order one", metadata: ["eventfleet.checkpoint": "\(start)"])
        return ConsumerLease(fencingToken: token, checkpoint: GlobalCheckpoint(position: start))
    }

    /// Extends the lease; `false` when another instance has taken it.
    func renewLease(_ lease: ConsumerLease) async throws -> Bool {
        let rows = try await store.database.query("renew consumer lease", """
            UPDATE \(subscriptions)
               SET lease_expires_at = clock_timestamp() + \(leaseMilliseconds) * interval '1 millisecond', updated = now()
             WHERE subscription_id = \(configuration.name) AND partition = \(configuration.scopeKey)
               AND version = \(configuration.version) AND owner = \(configuration.instanceId)
               AND fencing_token = \(lease.fencingToken)
            RETURNING 1
            """)
        return !rows.isEmpty
    }

    /// Gives the lease up so a standby instance takes over at once.
    func releaseLease(_ lease: ConsumerLease) async {
        do {
            try await store.database.query("release consumer lease", """
                UPDATE \(subscriptions) SET owner = NULL, lease_expires_at = NULL, updated = now()
                 WHERE subscription_id = \(configuration.name) AND partition = \(configuration.scopeKey)
                   AND version = \(configuration.version) AND owner = \(configuration.instanceId)
                   AND fencing_token = \(lease.fencingToken)
                """)
        } catch {
            logger.warning("could not release the lease; it expires on its own", metadata: ["eventfleet.error": "\(error)"])
        }
    }

    /// Moves the checkpoint from `from` to `to` inside the batch's transaction, only while this
    /// instance still holds the lease with the same token and nobody moved the checkpoint meanwhile.
    ///
    /// - Throws: ``ProjectionError/leaseLost(consumer:scope:)`` when the compare-and-set matches no
    ///   row; the caller's transaction then rolls back.
    func advanceCheckpoint(from: GlobalCheckpoint, to: GlobalCheckpoint, lease: ConsumerLease, on connection: Database.Connection) async throws {
        let rows = try await connection.query("""
            UPDATE \(subscriptions)
               SET log_position = \(to.position), log_held_keys = \(to.held.map(\.key)), log_held_positions = \(to.held.map(\.position)),
                   updated = now()
             WHERE subscription_id = \(configuration.name) AND partition = \(configuration.scopeKey)
               AND version = \(configuration.version) AND owner = \(configuration.instanceId)
               AND fencing_token = \(lease.fencingToken)
               AND log_position = \(from.position) AND log_held_keys = \(from.held.map(\.key))
               AND log_held_positions = \(from.held.map(\.position))
            RETURNING 1
            """)
        guard !rows.isEmpty else { throw ProjectionError.leaseLost(consumer: configuration.name, scope: configuration.scopeKey) }
    }
}
