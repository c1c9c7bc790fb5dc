import EventFleetCLI
import EventFleetTestSupport
import Foundation
import Testing

/// The files in deploy/ are checked the way a cluster and systemd would read them.
@Suite("Deployment files", .exclusive)
struct DeployTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("Kubernetes manifests validate against the schemas and systemd units verify")
    func validateDeploy() async throws {
        let run = try await ChildProcess.run(
            Self.root.appendingPathComponent("scripts/validate-deploy").path, environment: ProcessInfo.processInfo.environment
        )
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains(" 0 failed"), "\(run.stdout)")
        #expect(run.stdout.contains("OK   deploy/kubernetes/worker-shared.yaml"))
        #expect(run.stdout.contains("OK   deploy/systemd/eventfleet-worker@.service"))
    }
}
