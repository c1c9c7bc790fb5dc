import Synchronization

/// Faults the chaos soak injects inside a worker, where no signal or proxy reaches: only
/// `eventfleet-chaos` sets them (from its environment); every other binary leaves them off.
package enum FaultHooks {
    private static let lostClaimReplies = Mutex<Double>(0)

    /// The share of claims whose reply is dropped after the claim committed, as a lost reply would
    /// be: the jobs are `running` under this worker, which never hears of them.
    package static var lostClaimReplyRate: Double {
        get { lostClaimReplies.withLock { $0 } }
        set { lostClaimReplies.withLock { $0 = newValue } }
    }

    /// Whether to drop this claim's reply.
    static func dropsClaimReply() -> Bool {
        let rate = lostClaimReplyRate
        return rate > 0 && Double.random(in: 0..<1) < rate
    }
}
