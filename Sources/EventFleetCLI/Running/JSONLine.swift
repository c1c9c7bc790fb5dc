import EventFleetCore
import Foundation

/// Writes one JSON object per line; raw JSON fields (event data) are spliced in verbatim so that
/// numbers keep their exact digits.
struct JSONLine {
    private var fields: [String] = []

    mutating func add(_ key: String, string value: String?) {
        fields.append("\(Self.quote(key)):\(value.map(Self.quote) ?? "null")")
    }

    mutating func add(_ key: String, number value: Int64?) {
        fields.append("\(Self.quote(key)):\(value.map(String.init) ?? "null")")
    }

    mutating func add(_ key: String, bool value: Bool) {
        fields.append("\(Self.quote(key)):\(value)")
    }

    mutating func add(_ key: String, rawJSON value: Data) {
        fields.append("\(Self.quote(key)):\(String(decoding: value, as: UTF8.self))")
    }

    var text: String { "{\(fields.joined(separator: ","))}" }

    static func quote(_ value: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "\"\""
    }
}
