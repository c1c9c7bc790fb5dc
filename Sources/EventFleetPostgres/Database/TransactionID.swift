import NIOCore
import PostgresNIO

/// A PostgreSQL `xid8` (a transaction id with its epoch), read and bound as itself: a checkpoint's
/// transaction never goes through text, and a value that is not an `xid8` fails to decode.
package struct TransactionID: PostgresCodable, PostgresNonThrowingEncodable, Sendable, Hashable {
    package var value: UInt64

    package init(_ value: UInt64) {
        self.value = value
    }

    package static var psqlType: PostgresDataType { .xid8 }
    package static var psqlFormat: PostgresFormat { .binary }

    package func encode<JSONEncoder: PostgresJSONEncoder>(
        into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>
    ) {
        byteBuffer.writeInteger(value)
    }

    package init<JSONDecoder: PostgresJSONDecoder>(
        from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat, context: PostgresDecodingContext<JSONDecoder>
    ) throws {
        guard type == .xid8 else { throw PostgresDecodingError.Code.typeMismatch }
        switch format {
        case .binary:
            guard buffer.readableBytes == 8, let value = buffer.readInteger(as: UInt64.self) else {
                throw PostgresDecodingError.Code.failure
            }
            self.value = value
        case .text:
            guard let text = buffer.readString(length: buffer.readableBytes), let value = UInt64(text) else {
                throw PostgresDecodingError.Code.failure
            }
            self.value = value
        }
    }
}
