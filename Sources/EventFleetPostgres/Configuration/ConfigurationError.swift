/// A database configuration that cannot be used: nothing was connected or written.
public enum ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// The URL, or one of its parameters, is wrong; `part` names it (`port`, `sslmode`,
    /// `parameter 'sslmod'`, or empty for the URL as a whole). The password never appears here.
    case invalidURL(part: String, reason: String)
    /// The environment variable that should hold the URL is not set.
    case missingURL(variable: String)
    /// The root certificates for TLS verification (`sslrootcert`) cannot be loaded.
    case unreadableRootCertificates(path: String, underlying: any Error)

    public var description: String {
        switch self {
        case .invalidURL(let part, let reason):
            "invalid DATABASE_URL\(part.isEmpty ? "" : " \(part)"): \(reason)"
        case .missingURL(let variable):
            "\(variable) is not set; expected postgres://user:password@host:port/database"
        case .unreadableRootCertificates(let path, let underlying):
            "cannot load the root certificates in '\(path)' (sslrootcert): \(underlying)"
        }
    }
}
