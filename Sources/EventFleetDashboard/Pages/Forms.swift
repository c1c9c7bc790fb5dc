/// The forms that act on the fleet, shown to a signed-in browser only. Each posts to
/// `actions/<name>` with the session's `csrf` value and the page to return to.
struct Forms {
    let signedIn: SignedIn
    let base: String
    /// The page the action returns to (path and query).
    let back: String

    /// A button that posts `fields` to the action; `confirm` asks first (the live script does).
    func button(_ label: String, action: String, fields: [(String, String)], confirm: String? = nil, tone: String? = nil) -> HTML {
        let confirmation: HTML = confirm.map { " data-confirm=\"\($0)\"" } ?? ""
        let toned: HTML = tone.map { " class=\"\($0)\"" } ?? ""
        return """
            <form class="inline" method="post" action="\(base)/actions/\(action)"\(confirmation)>\(hidden(fields))\
            <button type="submit"\(toned)>\(label)</button></form>
            """
    }

    /// A form with visible `inputs` (markup) beside the hidden fields.
    func form(_ label: String, action: String, fields: [(String, String)], inputs: HTML) -> HTML {
        """
        <form class="inline" method="post" action="\(base)/actions/\(action)">\(hidden(fields))\(inputs)\
        <button type="submit">\(label)</button></form>
        """
    }

    private func hidden(_ fields: [(String, String)]) -> HTML {
        let all = [("csrf", signedIn.csrf), ("back", back)] + fields
        return HTML(all.map { name, value -> HTML in "<input type=\"hidden\" name=\"\(name)\" value=\"\(value)\">" })
    }
}

extension HTML {
    /// The values one after another.
    init(_ values: [HTML]) {
        self = "\(values)"
    }
}
