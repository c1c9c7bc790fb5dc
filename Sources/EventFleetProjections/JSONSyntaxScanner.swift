/// Checks JSON syntax (RFC 8259) without building values: one document holding exactly one value.
/// Iterative, so nesting depth costs memory for a stack of brackets, not call stack.
package struct JSONSyntaxScanner {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    /// Whether `text` is exactly one JSON value, with optional surrounding whitespace. A scan that
    /// builds nothing: it runs for every mapped JSON column of every row a projection writes, so
    /// that such a value cannot spill into other columns of the row document.
    package static func isSingleValue(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            var scanner = JSONSyntaxScanner(bytes: bytes)
            return scanner.scanDocument()
        }
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
                    for _ in 0..<4 {
                        guard let hex = peek(), Self.isHexDigit(hex) else { return false }
                        index += 1
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

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
    }
}
