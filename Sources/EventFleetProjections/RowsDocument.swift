import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-model rows as one JSON array of objects (column name → value), which a single statement
/// turns into typed rows with `json_populate_recordset(NULL::table, $1)`: PostgreSQL converts each
/// value to its column's own type, so any number of rows costs one bind and one round trip.
///
/// Values are checked on the way in, so a value PostgreSQL would refuse is a typed error naming
/// the column and the stream rather than a database error about the whole statement.
struct RowsDocument {
    private(set) var bytes: [UInt8] = [UInt8(ascii: "[")]
    private(set) var count = 0

    var text: String {
        String(decoding: bytes + [UInt8(ascii: "]")], as: UTF8.self)
    }

    /// Appends one row. `.json` values are checked to be exactly one JSON value that PostgreSQL can
    /// store; `trustedColumn` holds JSON this library encoded itself (the snapshot), which is only
    /// checked for what an encoder writes and PostgreSQL refuses (`\u0000`).
    mutating func append(
        _ values: [(column: String, value: SQLValue)], trustedColumn: String,
        problem: (_ column: String, _ reason: String) -> ProjectionError
    ) throws(ProjectionError) {
        if count > 0 { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "{"))
        for (offset, (column, value)) in values.enumerated() {
            if offset > 0 { bytes.append(UInt8(ascii: ",")) }
            Self.appendString(column, to: &bytes)
            bytes.append(UInt8(ascii: ":"))
            if case .json(let text) = value,
               let reason = column == trustedColumn ? JSONSyntaxScanner.unstorableEscape(in: text) : JSONSyntaxScanner.problem(in: text) {
                throw problem(column, reason)
            }
            try appendValue(value, column: column, problem: problem)
        }
        bytes.append(UInt8(ascii: "}"))
        count += 1
    }

    private mutating func appendValue(
        _ value: SQLValue, column: String, problem: (_ column: String, _ reason: String) -> ProjectionError
    ) throws(ProjectionError) {
        switch value {
        case .null:
            bytes.append(contentsOf: "null".utf8)
        case .text(let text):
            if text.utf8.contains(0) { throw problem(column, "the text contains a NUL character, which PostgreSQL text cannot hold") }
            Self.appendString(text, to: &bytes)
        case .int(let number):
            bytes.append(contentsOf: String(number).utf8)
        case .double(let number):
            if number.isFinite {
                bytes.append(contentsOf: "\(number)".utf8)
            } else {
                // PostgreSQL's float input reads these words; JSON has no literal for them.
                Self.appendString(number.isNaN ? "NaN" : (number > 0 ? "Infinity" : "-Infinity"), to: &bytes)
            }
        case .bool(let flag):
            bytes.append(contentsOf: (flag ? "true" : "false").utf8)
        case .json(let text):
            bytes.append(contentsOf: text.utf8)
        case .timestamp(let date):
            guard let text = Self.timestampText(date) else {
                throw problem(column, "the timestamp \(date) is outside the years 1 to 9999")
            }
            Self.appendString(text, to: &bytes)
        }
    }

    static func appendString(_ text: String, to bytes: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0..<0x20:
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, to the microsecond PostgreSQL keeps; `nil` outside years 1–9999.
    static func timestampText(_ date: Date) -> String? {
        let microseconds = (date.timeIntervalSince1970 * 1_000_000).rounded()
        guard microseconds.isFinite, abs(microseconds) < 3e17 else { return nil }
        let total = Int64(microseconds)
        var seconds = total / 1_000_000
        var fraction = total % 1_000_000
        if fraction < 0 {
            fraction += 1_000_000
            seconds -= 1
        }
        var time = time_t(seconds)
        var parts = tm()
        guard gmtime_r(&time, &parts) != nil else { return nil }
        let year = Int(parts.tm_year) + 1900
        guard (1...9999).contains(year) else { return nil }
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(year, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T"
            + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(Int(fraction), 6))Z"
    }
}
