import Foundation

extension EventStore {
    /// Appends typed events, encoding each through `Codable`.
    ///
    /// - Throws: As ``appendToStream(_:messages:options:)``.
    @discardableResult
    public func appendToStream<E: Event>(
        _ streamId: String,
        events: [E],
        options: AppendOptions = AppendOptions(),
        encoder: JSONEncoder = JSONEncoder()
    ) async throws -> AppendResult {
        let messages = try events.map { try ProposedMessage($0, encoder: encoder) }
        return try await appendToStream(streamId, messages: messages, options: options)
    }

    /// Reads a stream and decodes its events.
    ///
    /// - Parameters:
    ///   - streamId: The stream.
    ///   - as: The domain's event enum.
    ///   - options: Partition, range and maximum count.
    ///   - unknownTypes: Whether an unknown type name throws or is left out.
    ///   - decoder: Decodes each event's data.
    /// - Throws: As ``readStream(_:options:)``, plus the decoding errors of
    ///   ``RecordedMessage/decode(as:unknownTypes:decoder:)``.
    public func readStream<E: Event>(
        _ streamId: String,
        as: E.Type,
        options: ReadStreamOptions = ReadStreamOptions(),
        unknownTypes: UnknownEventTypePolicy = .fail,
        decoder: JSONDecoder = JSONDecoder()
    ) async throws -> ReadStreamResult<RecordedEvent<E>> {
        let raw = try await readStream(streamId, options: options)
        var events: [RecordedEvent<E>] = []
        events.reserveCapacity(raw.events.count)
        for message in raw.events {
            if let event = try message.decode(as: E.self, unknownTypes: unknownTypes, decoder: decoder) {
                events.append(event)
            }
        }
        return ReadStreamResult(currentStreamVersion: raw.currentStreamVersion, streamExists: raw.streamExists, events: events)
    }

    /// Folds a stream into state with the domain's `evolve`, page by page.
    ///
    /// The state reflects exactly the events up to the version the first page reported, even when
    /// other writers append meanwhile.
    ///
    /// - Parameters:
    ///   - streamId: The stream.
    ///   - as: The domain's event enum.
    ///   - options: Partition, expected version, unknown-type policy and page size.
    ///   - evolve: The domain's evolve function.
    ///   - initialState: The state before the first event.
    ///   - decoder: Decodes each event's data.
    /// - Throws: ``EventStoreError/versionConflict(streamId:partition:expected:actual:)`` when
    ///   `options.expectedVersion` does not match, and the errors of ``readStream(_:as:options:unknownTypes:decoder:)``.
    public func aggregateStream<State: Sendable, E: Event>(
        _ streamId: String,
        as: E.Type = E.self,
        options: AggregateStreamOptions = AggregateStreamOptions(),
        evolve: (State, E) throws -> State,
        initialState: () -> State,
        decoder: JSONDecoder = JSONDecoder()
    ) async throws -> AggregateStreamResult<State> {
        guard options.pageSize > 0 else {
            throw EventStoreError.invalidArgument(field: "pageSize", reason: "must be positive")
        }
        var state = initialState()
        var from: Int64 = 1
        var version: Int64? = nil
        var exists = false
        repeat {
            let page = try await readStream(
                streamId,
                options: ReadStreamOptions(partition: options.partition, from: from, to: version, maxCount: options.pageSize)
            )
            if version == nil {
                version = page.currentStreamVersion
                exists = page.streamExists
                if let expected = options.expectedVersion, !expected.isSatisfied(by: page.currentStreamVersion) {
                    throw EventStoreError.versionConflict(
                        streamId: streamId, partition: options.partition, expected: expected, actual: page.currentStreamVersion
                    )
                }
            }
            for message in page.events {
                if let recorded = try message.decode(as: E.self, unknownTypes: options.unknownTypes, decoder: decoder) {
                    state = try evolve(state, recorded.event)
                }
            }
            guard let last = page.events.last, page.events.count == options.pageSize else { break }
            from = last.streamPosition + 1
        } while from <= version ?? 0
        return AggregateStreamResult(state: state, currentStreamVersion: version ?? 0, streamExists: exists)
    }

    /// The events of a stream as an asynchronous sequence that reads one page per round trip.
    ///
    /// - Parameters:
    ///   - streamId: The stream.
    ///   - partition: Its partition.
    ///   - from: First position, inclusive.
    ///   - pageSize: Events per round trip.
    public func streamMessages(
        _ streamId: String,
        partition: String = defaultPartition,
        from: Int64 = 1,
        pageSize: Int = 500
    ) -> StreamMessages {
        StreamMessages(store: self, streamId: streamId, partition: partition, from: from, pageSize: pageSize)
    }
}

/// A stream's events, read page by page. See ``EventStore/streamMessages(_:partition:from:pageSize:)``.
public struct StreamMessages: AsyncSequence, Sendable {
    public typealias Element = RecordedMessage

    let store: any EventStore
    let streamId: String
    let partition: String
    let from: Int64
    let pageSize: Int

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(sequence: self, next: from)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let sequence: StreamMessages
        var next: Int64
        var buffer: [RecordedMessage] = []
        var bufferIndex = 0
        var exhausted = false

        init(sequence: StreamMessages, next: Int64) {
            self.sequence = sequence
            self.next = next
        }

        public mutating func next() async throws -> RecordedMessage? {
            if bufferIndex == buffer.count {
                guard !exhausted else { return nil }
                guard sequence.pageSize > 0 else {
                    throw EventStoreError.invalidArgument(field: "pageSize", reason: "must be positive")
                }
                let page = try await sequence.store.readStream(
                    sequence.streamId,
                    options: ReadStreamOptions(partition: sequence.partition, from: next, maxCount: sequence.pageSize)
                )
                buffer = page.events
                bufferIndex = 0
                exhausted = page.events.count < sequence.pageSize
                guard let last = buffer.last else { return nil }
                next = last.streamPosition + 1
            }
            defer { bufferIndex += 1 }
            return buffer[bufferIndex]
        }
    }
}
