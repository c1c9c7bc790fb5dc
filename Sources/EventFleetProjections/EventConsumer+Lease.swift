import EventFleetCore
import EventFleetPostgres
import PostgresNIO

/// The lease that keeps one instance of a consumer active, and the checkpoint that goes with it.
struct ConsumerLease: Sendable {
    var fencingToken: Int64
    var checkpoint: GlobalCheckpoint
    var renewedAt: ContinuousClock.Instant
}

extension EventConsumer {
    var leaseMilliseconds: Int64 {
        Int64(configuration.leaseDuration.components.seconds) * 1_000
            + Int64(configuration.leaseDuration.components.attoseconds / 1_000_000_000_000_000)
    }

    /// Takes the lease when it is free, expired or already ours; `nil` when another instance holds it.
    /// Taking it over bumps the fencing token, which invalidates the previous holder's writes.
    func acquireLease() async throws -> ConsumerLease? {
        let query: PostgresQuery = """
            INSERT INTO ef_subscriptions (subscription_id, partition, version, owner, lease_expires_at, fencing_token)
            VALUES (\(configuration.name), \(configuration.scopeKey), \(configuration.version), \(configuration.instanceId),
                    clock_timestamp() + \(leaseMilliseconds) * interval '1 millisecond', 1)
            ON CONFLICT (subscription_id, partition, version) DO UPDATE
               SET owner = EXCLUDED.owner,
                   lease_expires_at = EXCLUDED.lease_expires_at,
                   fencing_token = ef_subscriptions.fencing_token
                       + CASE WHEN ef_subscriptions.owner IS DISTINCT FROM EXCLUDED.owner THEN 1 ELSE 0 END,
                   updated = now()
             WHERE ef_subscriptions.owner IS NULL
                OR ef_subscriptions.owner = EXCLUDED.owner
                OR ef_subscriptions.lease_expires_at < clock_timestamp()
            RETURNING fencing_token, last_transaction_id::text, last_global_position
            """
        return try await mapErrors("acquire consumer lease") {
            try await store.client.guardedQuery(query, logger: logger) { rows in
                for try await (token, transaction, position) in rows.decode((Int64, String, Int64).self) {
                    return ConsumerLease(
                        fencingToken: token,
                        checkpoint: GlobalCheckpoint(transactionId: UInt64(transaction) ?? 0, globalPosition: position),
                        renewedAt: .now
                    )
                }
                return nil
            }
        }
    }

    /// Extends the lease; `false` when another instance has taken it.
    func renewLease(_ lease: ConsumerLease) async throws -> Bool {
        let query: PostgresQuery = """
            UPDATE ef_subscriptions
               SET lease_expires_at = clock_timestamp() + \(leaseMilliseconds) * interval '1 millisecond', updated = now()
             WHERE subscription_id = \(configuration.name) AND partition = \(configuration.scopeKey)
               AND version = \(configuration.version) AND owner = \(configuration.instanceId)
               AND fencing_token = \(lease.fencingToken)
            RETURNING 1
            """
        return try await mapErrors("renew consumer lease") {
            try await store.client.guardedQuery(query, logger: logger) { rows in
                for try await _ in rows { return true }
                return false
            }
        }
    }

    /// Gives the lease up so a standby instance takes over at once.
    func releaseLease(_ lease: ConsumerLease) async {
        let query: PostgresQuery = """
            UPDATE ef_subscriptions SET owner = NULL, lease_expires_at = NULL, updated = now()
             WHERE subscription_id = \(configuration.name) AND partition = \(configuration.scopeKey)
               AND version = \(configuration.version) AND owner = \(configuration.instanceId)
               AND fencing_token = \(lease.fencingToken)
            """
        do {
            try await store.client.guardedQuery(query, logger: logger) { rows in for try await _ in rows {} }
        } catch {
            logger.warning("could not release the lease; it expires on its own", metadata: ["eventfleet.error": "\(error)"])
        }
    }

    /// Moves the checkpoint from `from` to `to` inside the batch's transaction, only while this
    /// instance still holds the lease with the same token and nobody moved the checkpoint meanwhile.
    ///
    /// - Throws: ``ProjectionError/leaseLost(consumer:scope:)`` when the compare-and-set matches no
    ///   row; the caller's transaction then rolls back.
    func advanceCheckpoint(from: GlobalCheckpoint, to: GlobalCheckpoint, lease: ConsumerLease, on connection: PostgresConnection) async throws {
        let query: PostgresQuery = """
            UPDATE ef_subscriptions
               SET last_transaction_id = \(String(to.transactionId))::xid8, last_global_position = \(to.globalPosition), updated = now()
             WHERE subscription_id = \(configuration.name) AND partition = \(configuration.scopeKey)
               AND version = \(configuration.version) AND owner = \(configuration.instanceId)
               AND fencing_token = \(lease.fencingToken)
               AND last_transaction_id = \(String(from.transactionId))::xid8 AND last_global_position = \(from.globalPosition)
            RETURNING 1
            """
        for try await _ in try await connection.checkedQuery(query, logger: logger) { return }
        throw ProjectionError.leaseLost(consumer: configuration.name, scope: configuration.scopeKey)
    }
}
