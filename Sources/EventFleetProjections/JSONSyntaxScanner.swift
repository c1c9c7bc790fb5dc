/// Checks JSON syntax (RFC 8259) without building values: one document holding exactly one value,
/// and nothing PostgreSQL's `jsonb` refuses although JSON allows it: the escape `\u0000` and a
/// UTF-16 surrogate escape without its pair. Iterative, so nesting depth costs memory for a stack
/// of brackets, not call stack.
package struct JSONSyntaxScanner {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    /// Why the document cannot be stored, once a string in it turned out so.
    private var unstorable: String?

    /// Why `text` is not exactly one storable JSON value, or `nil` when it is. A scan that builds
    /// nothing: it runs for every mapped JSON column of every row a projection writes, so that such
    /// a value cannot spill into other columns of the row document, and fails with a reason naming
    /// what PostgreSQL would refuse rather than a database error about the whole statement.
    package static func problem(in text: String) -> String? {
        var text = text
        return text.withUTF8 { bytes in
            var scanner = JSONSyntaxScanner(bytes: bytes)
            if scanner.scanDocument() { return nil }
            return scanner.unstorable ?? "the value is not exactly one JSON value"
        }
    }

    /// Why JSON that this library encoded itself (a snapshot) cannot be stored, or `nil`. Encoders
    /// write valid JSON, and a Swift string holds no lone surrogate, so only `\u0000` remains: the
    /// full scan runs only when the text holds that escape at all.
    package static func unstorableEscape(in text: String) -> String? {
        var text = text
        guard text.withUTF8(holdsNULEscape) else { return nil }
        return problem(in: text)
    }

    /// Whether the bytes hold `\u0000` anywhere (escaped or not: a quick test before a full scan).
    private static func holdsNULEscape(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let pattern = Array(#"\u0000"#.utf8)
        // The pattern's first byte, the backslash, recurs nowhere else in it, so a mismatch
        // restarts the match at this byte.
        var matched = 0
        for byte in bytes {
            if byte == pattern[matched] {
                matched += 1
                if matched == pattern.count { return true }
            } else {
                matched = byte == pattern[0] ? 1 : 0
            }
        }
        return false
    }

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Whether the bytes are exactly one JSON value, with optional surrounding whitespace.
    mutating func scanDocument() -> Bool {
        // Open containers; `true` for an object. After a value, the innermost decides what may follow.
        var containers: [Bool] = []
        while true {
            skipWhitespace()
            guard let byte = peek() else { return false }
            // A value.
            switch byte {
            case UInt8(ascii: "{"):
                index += 1
                skipWhitespace()
                if peek() == UInt8(ascii: "}") {
                    index += 1
                } else {
                    guard scanKey() else { return false }
                    containers.append(true)
                    continue
                }
            case UInt8(ascii: "["):
                index += 1
                skipWhitespace()
                if peek() == UInt8(ascii: "]") {
                    index += 1
                } else {
                    containers.append(false)
                    continue
                }
            case UInt8(ascii: "\""):
                guard scanString() else { return false }
            case UInt8(ascii: "t"):
                guard scanLiteral("true") else { return false }
            case UInt8(ascii: "f"):
                guard scanLiteral("false") else { return false }
            case UInt8(ascii: "n"):
                guard scanLiteral("null") else { return false }
            default:
                guard scanNumber() else { return false }
            }
            // After a value: close containers, or go on to the next element or member.
            while true {
                skipWhitespace()
                guard let isObject = containers.last else {
                    return index == bytes.count
                }
                guard let next = peek() else { return false }
                if next == UInt8(ascii: ",") {
                    index += 1
                    if isObject {
                        skipWhitespace()
                        guard scanKey() else { return false }
                    }
                    break
                }
                guard next == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) else { return false }
                index += 1
                containers.removeLast()
            }
        }
    }

    private func peek() -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
            index += 1
        }
    }

    /// A member's name and its colon.
    private mutating func scanKey() -> Bool {
        guard peek() == UInt8(ascii: "\""), scanString() else { return false }
        skipWhitespace()
        guard peek() == UInt8(ascii: ":") else { return false }
        index += 1
        return true
    }

    private mutating func scanString() -> Bool {
        index += 1
        while let byte = peek() {
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return true
            case UInt8(ascii: "\\"):
                guard let escaped = peek() else { return false }
                index += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    continue
                case UInt8(ascii: "u"):
                    guard let unit = scanHexUnit() else { return false }
                    if unit == 0 {
                        unstorable = "the value holds \\u0000, which PostgreSQL cannot store"
                        return false
                    }
                    if (0xDC00...0xDFFF).contains(unit) {
                        unstorable = "the value holds a UTF-16 low surrogate without its high surrogate (\\u\(Self.hex(unit))), which PostgreSQL cannot store"
                        return false
                    }
                    if (0xD800...0xDBFF).contains(unit) {
                        // Its pair must follow at once: another escape holding a low surrogate.
                        let paired = bytes.count - index >= 2 && bytes[index] == UInt8(ascii: "\\") && bytes[index + 1] == UInt8(ascii: "u")
                        if paired { index += 2 }
                        guard paired, let low = scanHexUnit(), (0xDC00...0xDFFF).contains(low) else {
                            unstorable = "the value holds a UTF-16 high surrogate without its low surrogate (\\u\(Self.hex(unit))), which PostgreSQL cannot store"
                            return false
                        }
                    }
                default:
                    return false
                }
            case 0..<0x20:
                return false
            default:
                continue
            }
        }
        return false
    }

    /// The four hex digits of a `\u` escape, as a UTF-16 code unit.
    private mutating func scanHexUnit() -> UInt16? {
        var unit: UInt16 = 0
        for _ in 0..<4 {
            guard let byte = peek(), let digit = Self.hexValue(byte) else { return nil }
            unit = unit << 4 | UInt16(digit)
            index += 1
        }
        return unit
    }

    private static func hex(_ unit: UInt16) -> String {
        let digits = String(unit, radix: 16, uppercase: true)
        return String(repeating: "0", count: 4 - digits.count) + digits
    }

    private mutating func scanLiteral(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - index >= count else { return false }
        for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] {
            return false
        }
        index += count
        return true
    }

    private mutating func scanNumber() -> Bool {
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), Self.isDigit(first) else { return false }
        index += 1
        if first != UInt8(ascii: "0") {
            while let byte = peek(), Self.isDigit(byte) { index += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard scanDigits() else { return false }
        }
        if let byte = peek(), byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            index += 1
            if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index += 1 }
            guard scanDigits() else { return false }
        }
        return true
    }

    private mutating func scanDigits() -> Bool {
        guard let byte = peek(), Self.isDigit(byte) else { return false }
        while let byte = peek(), Self.isDigit(byte) { index += 1 }
        return true
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
