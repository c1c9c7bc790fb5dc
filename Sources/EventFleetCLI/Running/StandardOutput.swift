// `stdout` is a mutable C global: Swift 6 reads it only through a `@preconcurrency` import of Glibc,
// which has no effect in a file that also imports Foundation. So it is read here alone, once, at
// startup, before any other thread writes to it.
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Standard output as the commands write it.
enum StandardOutput {
    /// Makes standard output line-buffered whatever it is connected to.
    ///
    /// The C library buffers standard output in blocks when it is a file or a pipe rather than a
    /// terminal, so the status lines of a long-running command (`launch`, `monitor --watch`) would
    /// reach a log collector (systemd's journal, a Procfile runner) only when a block fills or the
    /// process exits. Every line is written when it ends instead. Call it before anything is
    /// written to standard output.
    static func bufferLines() {
        setvbuf(stdout, nil, _IOLBF, 0)
    }
}
