import Foundation
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Shuts a fleet process down gracefully when the process that started it is gone.
///
/// `launch`, the tools and the tests start fleet processes with ``ChildProcess``, which names the
/// parent in ``ChildProcess/parentVariable``. A parent killed with SIGKILL cannot forward SIGTERM, so
/// its workers would run on, unsupervised, holding their jobs. The child re-parented to init (or a
/// subreaper) sees `getppid()` change and drains as on SIGTERM. `PR_SET_PDEATHSIG` would not do:
/// it fires when the thread that forked the child exits, and Swift's threads come and go.
struct ParentWatch: Service {
    let parent: pid_t
    let interval: Duration
    let logger: Logger

    /// The watch for this process, when a ``ChildProcess`` parent started it and is still its parent;
    /// `nil` otherwise (started from a shell, or the variable was inherited from further up).
    static func fromEnvironment(logger: Logger, interval: Duration = .milliseconds(500)) -> ParentWatch? {
        guard let value = ProcessInfo.processInfo.environment[ChildProcess.parentVariable],
              let parent = pid_t(value), parent > 1, getppid() == parent
        else { return nil }
        return ParentWatch(parent: parent, interval: interval, logger: logger)
    }

    /// Returns when the parent is gone, which shuts the group down gracefully; or when the group
    /// shuts down for another reason.
    func run() async {
        await cancelWhenGracefulShutdown {
            while getppid() == parent {
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return
                }
            }
            logger.warning("the parent process is gone; shutting down", metadata: ["eventfleet.parent_pid": "\(parent)"])
        }
    }
}
