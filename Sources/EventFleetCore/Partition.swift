/// Partitions (tenants) scope every stream, read, checkpoint and job.
///
/// A partition is a plain string. Operations that take no partition use ``defaultPartition``.
public let defaultPartition = "default"

/// Validation of the identifiers users pass to the store: stream ids, partitions, types and message ids.
///
/// They are stored verbatim as bound parameters (quotes and semicolons are harmless), but PostgreSQL
/// text cannot hold NUL bytes and a B-tree index entry has a size limit, so those are rejected up front
/// with an error naming the field rather than failing deep inside the database.
package enum IdentifierValidation {
    /// The largest identifier, in UTF-8 bytes. Keeps the (partition, stream id, position) key well below
    /// PostgreSQL's index row limit of about 2,700 bytes.
    package static let maximumUTF8Length = 1_000

    package static func validate(_ value: String, field: String) throws(EventStoreError) {
        if value.isEmpty {
            throw .invalidArgument(field: field, reason: "must not be empty")
        }
        if value.utf8.count > maximumUTF8Length {
            throw .invalidArgument(
                field: field,
                reason: "is \(value.utf8.count) bytes long; the limit is \(maximumUTF8Length) bytes of UTF-8"
            )
        }
        if value.utf8.contains(0) {
            throw .invalidArgument(field: field, reason: "must not contain NUL bytes")
        }
    }
}
