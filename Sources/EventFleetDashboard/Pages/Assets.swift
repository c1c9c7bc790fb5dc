import Hummingbird

/// The files the pages load, served by the binary itself.
enum Asset {
    case stylesheet
    case liveScript

    var response: Response {
        let (type, text) = switch self {
        case .stylesheet: ("text/css; charset=utf-8", Self.css)
        case .liveScript: ("text/javascript; charset=utf-8", Self.script)
        }
        return Response(
            status: .ok, headers: [.contentType: type, .cacheControl: "max-age=300"], body: ResponseBody(byteBuffer: ByteBuffer(string: text))
        )
    }

    private static let css = """
        :root { color-scheme: light dark; --line: #8884; --muted: #888; --bad: #c33; --warn: #b80; --good: #2a2; --s1: #37c; --s2: #d83; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, sans-serif; }
        header { display: flex; gap: 2em; align-items: center; padding: .6em 1.5em; border-bottom: 1px solid var(--line); }
        nav { display: flex; gap: 1.2em; }
        nav a { text-decoration: none; }
        nav a[aria-current] { font-weight: 600; text-decoration: underline; }
        main { padding: 1em 1.5em; max-width: 1400px; }
        h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid var(--line); vertical-align: top; }
        th a { text-decoration: none; }
        td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
        .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: .8em; }
        .card { border: 1px solid var(--line); border-radius: 6px; padding: .6em .8em; }
        .card .value { font-size: 1.6em; font-variant-numeric: tabular-nums; }
        .card .label { color: var(--muted); }
        .bad { color: var(--bad); } .warn { color: var(--warn); } .good { color: var(--good); } .muted { color: var(--muted); }
        .stale { border: 2px solid var(--bad); padding: .5em 1em; border-radius: 6px; margin: .6em 1.5em; }
        .stale[hidden] { display: none; }
        pre { white-space: pre-wrap; word-break: break-word; margin: 0; }
        form.filters { display: flex; gap: .6em; flex-wrap: wrap; margin: .6em 0; }
        .pages { margin: .8em 0; display: flex; gap: 1em; }
        header .who { margin-left: auto; display: flex; gap: .6em; align-items: center; }
        form.inline { display: inline-flex; gap: .4em; align-items: center; margin: .15em .4em .15em 0; }
        form.inline input:not([type=hidden]), form.inline select { width: 7em; }
        button.bad { color: var(--bad); }
        .notice { border: 2px solid var(--good); padding: .5em 1em; border-radius: 6px; margin: .6em 1.5em; }
        .actions { margin: .6em 0; }
        .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: .8em; }
        figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: .5em .8em; }
        figure.chart svg { display: block; width: 100%; height: auto; }
        .chart .axis { stroke: var(--line); stroke-width: 1; }
        .chart text { font-size: 9px; fill: var(--muted); }
        .chart polyline { fill: none; stroke-width: 1.5; stroke-linejoin: round; }
        .chart polyline.s1 { stroke: var(--s1); } .chart polyline.s2 { stroke: var(--s2); }
        .chart circle.s1 { fill: var(--s1); } .chart circle.s2 { fill: var(--s2); }
        .legend { display: block; color: var(--muted); font-size: .9em; }
        .legend .key { display: inline-block; width: .9em; height: .25em; margin: 0 .3em 0 0; vertical-align: middle; }
        .legend .item { white-space: nowrap; margin-right: .8em; }
        .legend .key.s1 { background: var(--s1); } .legend .key.s2 { background: var(--s2); }
        """

    /// Keeps a page's live figures current: reads `api/overview` every refresh interval and rewrites
    /// every element marked `data-live` with its figure, formatted as the server formats it; shows
    /// the stale banner while the fleet (or the dashboard) cannot be read.
    private static let script = """
        (function () {
          "use strict";
          var root = document.documentElement;
          var base = root.dataset.base || "";
          var interval = Number(root.dataset.refresh || "2000");
          function count(n) { return Number(n).toLocaleString("en-US"); }
          function duration(s) {
            if (s === null || s === undefined) return "\u{2013}";
            if (s < 60) return Math.round(s) + " s";
            if (s < 3600) return Math.round(s / 60) + " min";
            return (s / 3600).toFixed(1) + " h";
          }
          var formats = { oldestReadySeconds: duration };
          function banner(text) {
            var element = document.getElementById("stale");
            if (!element) return;
            element.hidden = text === null;
            if (text !== null) element.textContent = text;
          }
          function tick() {
            fetch(base + "/api/overview", { cache: "no-store" })
              .then(function (response) {
                if (!response.ok) throw new Error("HTTP " + response.status);
                return response.json();
              })
              .then(function (figures) {
                document.querySelectorAll("[data-live]").forEach(function (element) {
                  var key = element.dataset.live;
                  if (key in figures) {
                    element.textContent = (formats[key] || count)(figures[key]) + (figures[key + "BeyondLimit"] ? "+" : "");
                  }
                });
                banner(figures.stale
                  ? "The fleet could not be read since " + figures.readAt + ": " + figures.error + ". The figures are the last read."
                  : null);
              })
              .catch(function (error) {
                banner("The dashboard cannot be reached (" + error.message + "). The figures are from before.");
              })
              .finally(function () { setTimeout(tick, interval); });
          }
          setTimeout(tick, interval);
          // A form that changes much (purge, retry of many) asks first.
          document.addEventListener("submit", function (event) {
            var question = event.target.dataset && event.target.dataset.confirm;
            if (question && !window.confirm(question)) event.preventDefault();
          });
        })();
        """
}
