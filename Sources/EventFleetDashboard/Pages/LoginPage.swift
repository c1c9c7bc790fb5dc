/// Signing in with an admin token: the browser then holds a session cookie, and the pages show the
/// forms that act.
struct LoginPage {
    let base: String
    /// The page to return to.
    let back: String
    /// Whether the dashboard has admin tokens at all.
    let admin: Bool
    /// The last attempt gave a token the dashboard does not have.
    let failed: Bool

    var page: Page {
        guard admin else {
            return Page(title: "Read-only", section: nil, body: """
                <h1>This dashboard is read-only</h1>
                <p>It was started without admin tokens. Start it with <code>--admin-token-file</code> (or
                <code>EVENTFLEET_DASHBOARD_ADMIN_TOKENS</code>) to retry and purge dead jobs, pause, scale and backfill tenants.</p>
                """)
        }
        let failure: HTML = failed ? #"<p class="bad" role="alert">That is not one of this dashboard's admin tokens.</p>"# : ""
        return Page(title: "Sign in", section: nil, body: """
            <h1>Sign in to act on the fleet</h1>
            \(failure)
            <form method="post" action="\(base)/login">
            <input type="hidden" name="back" value="\(back)">
            <label>Admin token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
            <button type="submit">Sign in</button>
            </form>
            <p class="muted">Every action is recorded in the <a href="\(base)/audit">audit</a> under the token's name.</p>
            """)
    }
}
