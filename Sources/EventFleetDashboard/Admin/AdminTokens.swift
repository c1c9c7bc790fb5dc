import Foundation

/// The tokens that let an operator act through the dashboard, each with a name that the audit
/// records as who acted.
///
/// A token file holds one token per line, its name first: `alice 6f1c…` or `alice:6f1c…`. Blank
/// lines and lines starting with `#` are skipped. A name is letters, digits and `. _ @ -`, at most
/// 64 characters, and unique in the file; a token is at least 16 characters without spaces.
/// Generate one with `openssl rand -hex 24`.
///
/// Without tokens the dashboard is read-only.
public struct AdminTokens: Sendable {
    /// One token and the name it acts under.
    public struct Token: Sendable, Hashable {
        public var name: String
        var secret: String
    }

    /// The names of the tokens, in the file's order.
    public var names: [String] { tokens.map(\.name) }

    let tokens: [Token]

    /// Parses tokens in the token file's format.
    ///
    /// - Parameters:
    ///   - text: The file's content.
    ///   - source: Where the text comes from, for errors (a path, or the environment variable).
    /// - Throws: ``DashboardConfigurationError/adminTokens(source:line:reason:)`` naming the line.
    public init(parsing text: String, source: String) throws {
        var tokens: [Token] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            func invalid(_ reason: String) -> DashboardConfigurationError {
                .adminTokens(source: source, line: index + 1, reason: reason)
            }
            let separator = line.firstIndex(where: { $0 == ":" || $0 == " " || $0 == "\t" })
            guard let separator else { throw invalid("expected a name and a token (name token), found one word") }
            let name = String(line[..<separator])
            let secret = line[line.index(after: separator)...].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.count <= 64,
                  name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "._@-".unicodeScalars.contains($0) })
            else { throw invalid("the name '\(name)' is not 1 to 64 letters, digits, '.', '_', '@' or '-'") }
            guard secret.count >= 16, !secret.contains(where: \.isWhitespace) else {
                throw invalid("the token of '\(name)' is shorter than 16 characters or contains spaces")
            }
            guard !tokens.contains(where: { $0.name == name }) else { throw invalid("the name '\(name)' is given twice") }
            tokens.append(Token(name: name, secret: secret))
        }
        guard !tokens.isEmpty else { throw DashboardConfigurationError.adminTokens(source: source, line: nil, reason: "holds no token") }
        self.tokens = tokens
    }

    /// Reads a token file.
    ///
    /// - Throws: ``DashboardConfigurationError/adminTokenFile(path:reason:)`` when it cannot be
    ///   read, ``DashboardConfigurationError/adminTokens(source:line:reason:)`` when a line is wrong.
    public init(contentsOfFile path: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw DashboardConfigurationError.adminTokenFile(path: path, reason: "\(error.localizedDescription)")
        }
        try self.init(parsing: text, source: path)
    }

    /// The name of the token `presented` is, or `nil`. Every token is compared in full, so the time
    /// taken says nothing about how much of a token matched.
    func name(of presented: String) -> String? {
        var found: String?
        for token in tokens where Self.constantTimeEquals(token.secret, presented) {
            found = token.name
        }
        return found
    }

    /// Whether two strings are equal, in a time that depends on their lengths only.
    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let (a, b) = (Array(a.utf8), Array(b.utf8))
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}

/// Why the dashboard cannot start as configured.
public enum DashboardConfigurationError: Error, CustomStringConvertible, Equatable {
    /// The admin token file cannot be read.
    case adminTokenFile(path: String, reason: String)
    /// A line of the admin tokens is wrong, or they hold no token (`line` is `nil`).
    case adminTokens(source: String, line: Int?, reason: String)

    public var description: String {
        switch self {
        case .adminTokenFile(let path, let reason): "the admin token file \(path) cannot be read: \(reason)"
        case .adminTokens(let source, let line?, let reason): "admin tokens (\(source), line \(line)): \(reason)"
        case .adminTokens(let source, nil, let reason): "admin tokens (\(source)): \(reason)"
        }
    }
}
