import NIOCore
import PostgresNIO

/// Which queue a job waits in. Live work (new events) and backfills are capped separately per
/// tenant, so a tenant's backfill cannot starve anyone's live work.
public enum JobLane: String, Sendable, Hashable, Codable, CaseIterable {
    case live
    case backfill
}

extension JobLane: PostgresDecodable {
    /// Reads a lane from its text; any other text fails to decode rather than become a lane.
    public init<JSONDecoder: PostgresJSONDecoder>(
        from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat, context: PostgresDecodingContext<JSONDecoder>
    ) throws {
        guard let lane = JobLane(rawValue: try String(from: &buffer, type: type, format: format, context: context)) else {
            throw PostgresDecodingError.Code.failure
        }
        self = lane
    }
}

/// A claimed job: bring one stream's projection up to date.
public struct Job: Sendable, Hashable {
    public var id: Int64
    public var projection: String
    public var partition: String
    public var streamId: String
    public var lane: JobLane
    /// This attempt's number, from 1.
    public var attempt: Int
    public var maxAttempts: Int
    /// The claim's token: completing or failing the job only counts with it.
    public var fencingToken: Int64

    public init(
        id: Int64, projection: String, partition: String, streamId: String, lane: JobLane,
        attempt: Int, maxAttempts: Int, fencingToken: Int64
    ) {
        self.id = id
        self.projection = projection
        self.partition = partition
        self.streamId = streamId
        self.lane = lane
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.fencingToken = fencingToken
    }
}

/// A job to enqueue.
public struct JobRequest: Sendable, Hashable {
    public var projection: String
    public var partition: String
    public var streamId: String
    public var lane: JobLane
    public var priority: Int32
    public var maxAttempts: Int32

    /// The attempts a job gets unless its request says otherwise (backfills get this many).
    public static let defaultMaxAttempts: Int32 = 10

    public init(
        projection: String, partition: String, streamId: String, lane: JobLane = .live, priority: Int32 = 0,
        maxAttempts: Int32 = JobRequest.defaultMaxAttempts
    ) {
        self.projection = projection
        self.partition = partition
        self.streamId = streamId
        self.lane = lane
        self.priority = priority
        self.maxAttempts = maxAttempts
    }
}
