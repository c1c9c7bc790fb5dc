/// Text for columns that record diagnostics, such as a failed job's error message.
///
/// An error's description can hold anything, but PostgreSQL text cannot hold NUL bytes: the
/// statement that records the failure would fail too, and the failure would go unrecorded.
package enum DiagnosticText {
    /// `text` with each NUL replaced by U+FFFD, so it can be stored.
    package static func storable(_ text: String) -> String {
        guard text.utf8.contains(0) else { return text }
        var scalars = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            scalars.append(scalar == "\u{0}" ? "\u{FFFD}" : scalar)
        }
        return String(scalars)
    }
}
