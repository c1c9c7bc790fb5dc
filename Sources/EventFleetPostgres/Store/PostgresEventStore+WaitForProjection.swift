import EventFleetCore
import PostgresNIO

extension PostgresEventStore {
    /// The channel on which the fleet's workers say that they committed projected rows, one
    /// notification per stream, for ``ProjectionWaitListener``.
    public static let projectedChannel = "eventfleet_projected"

    /// Says that rows of `streams` (partition, stream id) were committed, when this store notifies:
    /// after the commit, coalesced like the appends' notifications.
    package func notifyProjected(streams: some Sequence<(partition: String, streamId: String)>) async {
        guard let projectedNotifier else { return }
        let payloads = Set(streams.map { ProjectionWaits.payload(partition: $0.partition, streamId: $0.streamId) })
        guard !payloads.isEmpty else { return }
        await projectedNotifier.notify(payloads: payloads)
    }

    /// Returns once the fleet projection named `projection` shows the append of `token` in its row
    /// for the token's stream.
    ///
    /// Each look is one call of `ef_projection_progress`: a few reads by key (the row, the
    /// stream's events after it, the stream's job). With a ``ProjectionWaitListener`` running, the
    /// wait looks again when a worker commits the token's stream (and, in case a notification was
    /// lost, after 250 ms, backing off to 2 s); without one, it polls, every 5 ms for its first
    /// 100 ms, then backing off to 200 ms. Projections that keep a row per stream can be waited for
    /// (`SnapshotProjection`; see `StreamProjection.rowTable`).
    ///
    /// - Parameters:
    ///   - projection: The name of a projection the fleet's workers run.
    ///   - token: An append's `AppendResult.token`.
    ///   - timeout: How long to wait at most.
    /// - Throws: `EventStoreError.projectionTimedOut(projection:token:projectedPosition:timeout:job:)`,
    ///   `EventStoreError.projectionFailed(projection:token:attempts:error:)` as soon as the stream's
    ///   job is dead, `EventStoreError.projectionNotAwaitable(projection:reason:)`, and
    ///   `EventStoreError` for database errors.
    public func waitForProjection(_ projection: String, token: PositionToken, timeout: Duration) async throws {
        try IdentifierValidation.validate(projection, field: "projection")
        try IdentifierValidation.validate(token.partition, field: "token.partition")
        try IdentifierValidation.validate(token.streamId, field: "token.streamId")
        guard timeout >= .zero else {
            throw EventStoreError.invalidArgument(field: "timeout", reason: "must not be negative (got \(timeout))")
        }
        let clock = ContinuousClock()
        let started = clock.now
        let deadline = started + timeout
        try await projectionWaits.waiting(for: token) { wakeup in
            var polls = PollSchedule()
            while true {
                let progress = try await projectionProgress(projection, token: token)
                if progress.shown { return }
                if progress.jobState == "dead" {
                    throw EventStoreError.projectionFailed(
                        projection: projection, token: token, attempts: progress.jobAttempt ?? 0, error: progress.jobError ?? "no error recorded"
                    )
                }
                let now = clock.now
                guard now < deadline else {
                    throw EventStoreError.projectionTimedOut(
                        projection: projection, token: token, projectedPosition: progress.projectedPosition, timeout: timeout,
                        job: progress.jobState
                    )
                }
                // Listening, the polls only cover a lost notification, and back off so that many
                // waits behind a slow fleet do not slow it further.
                let interval = polls.next(listening: projectionWaits.isListening, waited: now - started)
                await wakeup.wait(timeout: min(interval, deadline - now))
                try Task.checkCancellation()
            }
        }
    }

    /// Throws `EventStoreError.projectionNotAwaitable(projection:reason:)` unless `projection` can be
    /// waited for, so that a caller can refuse before it appends.
    package func checkAwaitable(_ projection: String) async throws {
        try IdentifierValidation.validate(projection, field: "projection")
        _ = try await projectionProgress(projection, token: PositionToken(partition: "", streamId: "", streamPosition: 0, globalPosition: 0))
    }

    /// What `ef_projection_progress` says of a projection and a token's stream.
    private struct ProjectionProgress {
        var shown: Bool
        var projectedPosition: Int64?
        var jobState: String?
        var jobAttempt: Int?
        var jobError: String?
    }

    private func projectionProgress(_ projection: String, token: PositionToken) async throws -> ProjectionProgress {
        let rows = try await database.query("wait for projection \(projection)", """
            SELECT p.registered, p.has_rows, p.shown, p.projected_position, p.job_state, p.job_attempt, p.job_error
              FROM \(database.schema.ef_projection_progress)(\(projection), \(token.partition), \(token.streamId), \(token.streamPosition)) p
            """)
        guard let row = rows.first else {
            throw EventStoreError.database(operation: "wait for projection \(projection)", sqlState: nil, message: "ef_projection_progress answered no row")
        }
        let (registered, hasRows, shown, projected, state, attempt, error) = try row.decode(
            (Bool, Bool, Bool, Int64?, String?, Int32?, String?).self
        )
        guard registered else {
            throw EventStoreError.projectionNotAwaitable(
                projection: projection, reason: "no projection of that name is registered (a worker registers the projections it runs when it starts)"
            )
        }
        guard hasRows else {
            throw EventStoreError.projectionNotAwaitable(
                projection: projection, reason: "it keeps no row per stream (its StreamProjection has no rowTable)"
            )
        }
        return ProjectionProgress(shown: shown, projectedPosition: projected, jobState: state, jobAttempt: attempt.map(Int.init), jobError: error)
    }
}

/// How long a wait for a projection sleeps before it looks again: polling, every 5 ms for its first
/// 100 ms, then doubling up to 200 ms; woken by a listener, after 250 ms, doubling up to 2 s.
private struct PollSchedule {
    var last: Duration?

    mutating func next(listening: Bool, waited: Duration) -> Duration {
        let (first, cap) = listening ? (Duration.milliseconds(250), Duration.seconds(2)) : (Duration.milliseconds(5), Duration.milliseconds(200))
        let next: Duration
        if let last, last >= first, listening || waited >= .milliseconds(100) {
            next = min(cap, last * 2)
        } else {
            next = first
        }
        last = next
        return next
    }
}
