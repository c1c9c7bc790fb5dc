import EventFleetCore
import EventFleetPostgres
import Logging
import PostgresNIO
import ServiceLifecycle

extension EventConsumer {
    /// Polls the global log while this instance holds the lease; stands by while another does.
    func loop() async throws {
        var lease: ConsumerLease?
        var idleWait = configuration.pollInterval
        var backoff = Backoff()
        defer {
            progress.withLock {
                $0.isLeader = false
                $0.checkpoint = nil
                $0.lastContact = nil
            }
        }
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                guard let current = try await ensureLease(lease) else {
                    lease = nil
                    await wakeup.wait(timeout: configuration.leaseDuration / 3)
                    continue
                }
                lease = current
                let step: Step
                if let pages = configuration.serverSidePages {
                    step = try await serverSidePage(pages, lease: current)
                } else {
                    let batch = try await store.readAll(
                        after: current.position,
                        options: ReadAllOptions(
                            scope: configuration.scope, batchSize: configuration.batchSize, types: eventTypes.map { Array($0) },
                            includePayload: configuration.readsPayload
                        )
                    )
                    logger.trace("polled", metadata: ["eventfleet.events": "\(batch.messages.count)", "eventfleet.held_back": "\(batch.isHeldBack)"])
                    step = batch.messages.isEmpty
                        ? .empty(position: batch.checkpoint)
                        : .committed(try await process(batch, lease: current))
                }
                backoff.reset()
                switch step {
                case .empty(let position):
                    lease?.position = position
                    progress.withLock { $0.checkpoint = position }
                    // Events held back by an append in flight follow its commit, whose notification
                    // wakes the loop; a rollback wakes nobody and the poll finds them. The wait
                    // grows alike either way: a long hold (a tenant's slow import) must not keep the
                    // loop reading the log at the shortest interval.
                    await wakeup.wait(timeout: idleWait)
                    idleWait = min(idleWait * 2, configuration.maxPollInterval)
                case .committed(let checkpoint):
                    idleWait = configuration.pollInterval
                    lease?.checkpoint = checkpoint
                    lease?.position = checkpoint
                    progress.withLock { $0.checkpoint = checkpoint }
                }
            } catch let error as ProjectionError {
                guard case .leaseLost = error else { throw error }
                logger.warning("lost the lease to another instance; standing by")
                lease = nil
                progress.withLock {
                    $0.isLeader = false
                    $0.checkpoint = nil
                }
            } catch is CancellationError {
                break
            } catch where PostgresErrorMapping.isTransient(error) {
                let delay = backoff.next()
                logger.warning(
                    "database unavailable; retrying",
                    metadata: ["eventfleet.error": "\(error)", "eventfleet.retry_in": "\(delay)"]
                )
                await wakeup.wait(timeout: delay)
            }
        }
        if let lease {
            await releaseLease(lease)
        }
    }

    /// What one turn of the loop did.
    private enum Step {
        /// Nothing to handle: the log is read to its end, or held back by an append in flight. The
        /// next read starts at `position`, which no row records.
        case empty(position: GlobalCheckpoint)
        /// A batch committed, up to this checkpoint.
        case committed(GlobalCheckpoint)
    }

    /// Handles the next page on the server and moves the checkpoint, in one transaction, which the
    /// server ends if it idles longer than the lease (see ``inTransaction(_:)``).
    private func serverSidePage(_ pages: ServerSidePages, lease: ConsumerLease) async throws -> Step {
        let page = try await store.database.transaction("consume", idleTimeout: configuration.leaseDuration) { [self] connection in
            let page = try await pages.handle(lease.position, configuration.batchSize, connection)
            if page.events > 0 {
                try await advanceCheckpoint(from: lease.checkpoint, to: page.checkpoint, lease: lease, on: connection)
            }
            return page
        }
        logger.trace("handled a page on the server", metadata: ["eventfleet.events": "\(page.events)", "eventfleet.held_back": "\(page.isHeldBack)"])
        guard page.events > 0 else { return .empty(position: page.checkpoint) }
        await configuration.onCommit?(page.checkpoint, page.events)
        return .committed(page.checkpoint)
    }

    /// The lease to work under: the current one (renewed when a third of it has passed), a newly
    /// acquired one, or `nil` while another instance holds it.
    private func ensureLease(_ lease: ConsumerLease?) async throws -> ConsumerLease? {
        if var lease {
            guard ContinuousClock.now - lease.renewedAt >= configuration.leaseDuration / 3 else { return lease }
            if try await renewLease(lease) {
                lease.renewedAt = .now
                progress.withLock { $0.lastContact = lease.renewedAt }
                return lease
            }
            logger.warning("lost the lease to another instance; standing by")
            progress.withLock {
                $0.isLeader = false
                $0.checkpoint = nil
                $0.lastContact = .now
            }
            return nil
        }
        guard let acquired = try await acquireLease() else {
            progress.withLock { $0.lastContact = .now }
            return nil
        }
        progress.withLock {
            $0.isLeader = true
            $0.checkpoint = acquired.checkpoint
            $0.lastContact = .now
        }
        logger.info(
            "consumer active",
            metadata: ["eventfleet.checkpoint": "\(acquired.checkpoint)", "eventfleet.fencing_token": "\(acquired.fencingToken)"]
        )
        return acquired
    }

    /// Commits the batch in one transaction; when a handler fails, goes through the events one by
    /// one to retry (and, per policy, stop on or dead-letter) exactly the failing event.
    ///
    /// - Returns: The checkpoint after the last committed event.
    private func process(_ batch: GlobalLogBatch, lease: ConsumerLease) async throws -> GlobalCheckpoint {
        do {
            try await commit(batch.messages, from: lease.checkpoint, to: batch.checkpoint, lease: lease)
            return batch.checkpoint
        } catch where Self.isHandlerFailure(error) {
            logger.debug("a handler failed in a batch; retrying event by event", metadata: ["eventfleet.error": "\(error)"])
        }
        var checkpoint = lease.checkpoint
        for (index, message) in batch.messages.enumerated() {
            let next = batch.checkpoint(afterMessageAt: index)
            try await processOne(message, from: checkpoint, to: next, lease: lease)
            checkpoint = next
        }
        return checkpoint
    }

    private func processOne(_ message: RecordedMessage, from: GlobalCheckpoint, to: GlobalCheckpoint, lease: ConsumerLease) async throws {
        let policy = configuration.failurePolicy
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await commit([message], from: from, to: to, lease: lease)
                return
            } catch where Self.isHandlerFailure(error) {
                let metadata: Logger.Metadata = [
                    "eventfleet.stream_id": "\(message.streamId)", "eventfleet.partition": "\(message.partition)",
                    "eventfleet.stream_position": "\(message.streamPosition)", "eventfleet.attempt": "\(attempt)",
                    "eventfleet.error": "\(error)",
                ]
                if attempt < policy.maxAttempts {
                    logger.warning("handler failed; retrying", metadata: metadata)
                    try await Task.sleep(for: policy.backoff.delay(beforeRetry: attempt))
                    continue
                }
                switch policy.whenExhausted {
                case .stop:
                    logger.error("handler failed; stopping the consumer", metadata: metadata)
                    throw ProjectionError.handlerFailed(
                        consumer: configuration.name, streamId: message.streamId, partition: message.partition,
                        streamPosition: message.streamPosition, attempts: attempt, underlying: error
                    )
                case .deadLetter:
                    logger.error("handler failed; parking the event in ef_dead_letters", metadata: metadata)
                    try await deadLetter(message, error: error, attempts: attempt, from: from, to: to, lease: lease)
                    return
                }
            }
        }
    }

    /// Runs every projection on `messages` and moves the checkpoint, all in one transaction.
    private func commit(_ messages: [RecordedMessage], from: GlobalCheckpoint, to: GlobalCheckpoint, lease: ConsumerLease) async throws {
        try await inTransaction { [self] context in
            for projection in registry.projections {
                let handled = messages.filter { projection.handles($0.type) }
                if !handled.isEmpty {
                    try await projection.handle(handled, context: context)
                }
            }
            try await advanceCheckpoint(from: from, to: to, lease: lease, on: context.database)
        }
        await configuration.onCommit?(to, messages.count)
    }

    private func deadLetter(
        _ message: RecordedMessage, error: any Error, attempts: Int, from: GlobalCheckpoint, to: GlobalCheckpoint, lease: ConsumerLease
    ) async throws {
        try await inTransaction { [self] context in
            try await context.database.execute("""
                INSERT INTO \(context.database.schema.ef_dead_letters) (subscription_id, scope, partition, stream_id, stream_position,
                                             global_position, transaction_id, message_id, message_type, error, attempts)
                VALUES (\(configuration.name), \(configuration.scopeKey), \(message.partition), \(message.streamId),
                        \(message.streamPosition), \(message.globalPosition), \(TransactionID(message.transactionId)),
                        \(message.messageId), \(message.type), \(DiagnosticText.storable(String(describing: error))), \(attempts))
                """)
            try await advanceCheckpoint(from: from, to: to, lease: lease, on: context.database)
        }
        await configuration.onCommit?(to, 1)
    }

    /// Runs `body` in a transaction; driver errors come out as `EventStoreError`, a handler's own
    /// errors unchanged.
    ///
    /// The server ends the transaction if it idles longer than the lease. A leader frozen inside it
    /// would otherwise hold its checkpoint row's lock, which a standby's takeover waits for, and the
    /// marks of any events a handler appends, which hold their partitions back for every reader. A
    /// page has to finish within the lease anyway: the lease is renewed only between pages.
    private func inTransaction<T: Sendable>(_ body: @escaping @Sendable (ProjectionContext) async throws -> T) async throws -> T {
        try await store.database.transaction("consume", idleTimeout: configuration.leaseDuration) { [store, logger] connection in
            try await body(ProjectionContext(connection, store: store, logger: logger))
        }
    }

    /// Whether `error` is a handler's failure, not the database being away, a lost lease or a stop.
    static func isHandlerFailure(_ error: any Error) -> Bool {
        if error is CancellationError || PostgresErrorMapping.isTransient(error) { return false }
        if case .leaseLost = error as? ProjectionError { return false }
        return true
    }
}
