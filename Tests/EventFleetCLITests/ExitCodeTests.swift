import EventFleetCore
@testable import EventFleetCLI
import Testing

@Suite("Exit codes")
struct ExitCodeTests {
    @Test("a command whose every retry lost a version conflict exits 3, like a version conflict")
    func retriesExhaustedExitsLikeAConflict() {
        let exhausted = EventStoreError.retriesExhausted(streamId: "s", partition: "p", attempts: 6, expected: .exact(18), actual: 19)
        let conflict = EventStoreError.versionConflict(streamId: "s", partition: "p", expected: .exact(18), actual: 19)
        #expect(CommandLineRunner.exitCode(for: exhausted) == EventFleetExitCode.versionConflict)
        #expect(CommandLineRunner.exitCode(for: conflict) == EventFleetExitCode.versionConflict)
        #expect(EventFleetExitCode.versionConflict == 3)
    }
}
