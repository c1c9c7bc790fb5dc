import Hummingbird

/// HTML text in which every interpolated `String` is escaped.
///
/// Pages are built from `HTML` values only, so a tenant name, stream id or error text reaches the
/// page as text whatever it contains: markup comes from literals and from other `HTML` values,
/// never from data.
package struct HTML: Sendable, Hashable, ExpressibleByStringInterpolation, CustomStringConvertible {
    package private(set) var text: String

    package init(stringLiteral value: String) {
        text = value
    }

    package init(stringInterpolation: Interpolation) {
        text = stringInterpolation.text
    }

    package var description: String { text }

    package struct Interpolation: StringInterpolationProtocol {
        var text = ""

        package init(literalCapacity: Int, interpolationCount: Int) {
            text.reserveCapacity(literalCapacity + interpolationCount * 16)
        }

        package mutating func appendLiteral(_ literal: String) {
            text += literal
        }

        /// Escaped text.
        package mutating func appendInterpolation(_ value: String) {
            text += HTML.escape(value)
        }

        /// Escaped text, or nothing for `nil`.
        package mutating func appendInterpolation(_ value: String?) {
            if let value { text += HTML.escape(value) }
        }

        package mutating func appendInterpolation(_ value: HTML) {
            text += value.text
        }

        package mutating func appendInterpolation(_ values: [HTML]) {
            for value in values { text += value.text }
        }

        package mutating func appendInterpolation<Number: BinaryInteger>(_ value: Number) {
            text += String(value)
        }
    }

    /// `value` with the characters that HTML gives a meaning (`& < > " '`) replaced by entities.
    package static func escape(_ value: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(value.utf8.count)
        for character in value {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}

extension HTML: ResponseGenerator {
    package func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text))
        )
    }
}
