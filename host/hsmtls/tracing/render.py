"""Renderings of a handshake trace (the plain data of `Trace.to_dict()`).

- `render_terminal(data, console)`: a rich table, one row per entry, rounds separated.
- `to_svg(data)`: a sequence diagram drawn from the recorded entries — lanes for the
  client, the server and the keys (token, host file key, board), one row per message,
  key operation or milestone, each tagged with its classic step; a renegotiation is a
  second round under its own band. Hand-written, self-contained SVG: no script, no
  external font or stylesheet, so it opens in any browser and in headless Chromium.
- `to_html(data)`: the SVG inline plus a table of every entry with its decoded fields.

When both sides were traced in one process, each message is drawn once, from its
sender's record.
"""

from __future__ import annotations

import html
import json
from typing import Any

from hsmtls.tracing.steps import STEPS
from hsmtls.tracing.trace import PERFORMER_LABELS

LANE_ORDER = ("client_key", "client", "server", "server_key")
ROLE_STYLE = {"client": "cyan", "server": "green", "client_key": "yellow", "server_key": "yellow"}


def _arrow(a: str, b: str) -> str:
    short = {"client": "C", "server": "S", "client_key": "Ckey", "server_key": "Skey"}
    return "%s → %s" % (short.get(a, a), short.get(b, b))


def visible_entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Entries to draw: with both sides traced, a message or alert once (sender's copy)."""
    both = {"client", "server"} <= set(data.get("roles", []))
    out = []
    for e in data["entries"]:
        if both and e["kind"] in ("message", "alert") and e["side"] != e["from"]:
            continue
        out.append(e)
    return out


def lane_label(lane: str, data: dict[str, Any]) -> str:
    if lane.endswith("_key"):
        role = lane[: -len("_key")]
        p = data.get("performers", {}).get(role)
        return "%s key: %s" % (role, PERFORMER_LABELS.get(p, p)) if p else "%s key" % role
    return lane


def headline(data: dict[str, Any]) -> str:
    s = next(iter(data.get("summary", {}).values()), None)
    if not s:
        return "handshake did not complete"
    yn = {True: "yes", False: "no"}
    return "%s %s · extended master secret: %s · secure renegotiation: %s · renegotiations: %d" % (
        s["version"], s["suite"], yn[s["extended_master_secret"]],
        yn[s["secure_renegotiation"]], s["renegotiations"])


# -- terminal -----------------------------------------------------------------------------


def render_terminal(data: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    title = "TLS handshake trace" + (": " + data["title"] if data.get("title") else "")
    table = Table(title=title, caption=headline(data), show_lines=False, expand=False)
    table.add_column("ms", justify="right", style="dim")
    table.add_column("step", justify="right")
    table.add_column("dir")
    table.add_column("what", style="bold")
    table.add_column("bytes", justify="right", style="dim")
    table.add_column("details", overflow="fold")
    rnd = 1
    for e in visible_entries(data):
        if e["round"] != rnd:
            rnd = e["round"]
            table.add_section()
        if e["kind"] == "round":
            table.add_row("%.1f" % (e["t"] * 1000), "11", "",
                          Text("renegotiation — round %d" % e["round"], style="bold magenta"),
                          "", e["summary"])
            continue
        style = {"alert": "red", "inferred": "dim italic", "key_op": "yellow",
                 "key_result": "yellow", "milestone": "blue"}.get(e["kind"], "")
        if e["kind"] == "message":
            style = ROLE_STYLE.get(e["from"], "")
        direction = _arrow(e["from"], e["to"]) if e["from"] != e["to"] else e["from"]
        table.add_row(
            "" if not e["observed"] else "%.1f" % (e["t"] * 1000),
            str(e["step"]) if e["step"] else "",
            direction,
            Text(e["name"], style=style),
            str(e["size"]) if e["size"] else "",
            _details(e),
        )
    console.print(table)


def _details(e: dict[str, Any]) -> str:
    f = e["fields"]
    parts = [e["summary"]] if e["summary"] else []
    if e["name"] in ("ClientHello", "ServerHello"):
        parts.append("random " + f.get("random", "")[:16] + "…")
        if e["name"] == "ClientHello":
            parts.append("suites: " + ", ".join(f.get("cipher_suites", [])))
        parts.append("extensions: " + ", ".join(f.get("extensions", [])))
    elif e["name"] == "Certificate":
        for c in f.get("certificate_list", []):
            parts.append("%s ← %s (%s, %s, until %s)" % (
                c.get("subject"), c.get("issuer", "?"), c.get("key", "?"),
                c.get("signature_algorithm", "?"), c.get("not_after", "?")))
    elif e["name"] == "CertificateRequest":
        parts.append("signature algorithms: " + ", ".join(f.get("signature_algorithms", [])))
    return "\n".join(p for p in parts if p)


# -- SVG ----------------------------------------------------------------------------------

_ROW = 38
_BAND = 30
_LEFT = 120
_GAP = 250
_TOP = 96
_CHAR = 6.2  # average glyph width of the 11 px sans-serif, for truncation only

_CSS = """
text{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;fill:#222}
.title{font-size:16px;font-weight:bold}.sub{font-size:11px;fill:#555}
.lanehead{font-size:13px;font-weight:bold}.label{font-size:12px;font-weight:bold}
.small{font-size:10.5px;fill:#555}.time{font-size:10px;fill:#888}
.badge{font-size:11px;font-weight:bold;fill:#fff}.band{font-size:12px;font-weight:bold;fill:#6a1b9a}
.lifeline{stroke:#999;stroke-dasharray:4 4}.msg{stroke:#333;stroke-width:1.4}
.keyop{stroke:#b8860b;stroke-width:1.4}.alert{stroke:#c62828;stroke-width:1.6}
.ret{stroke-dasharray:5 3}.legend{font-size:11px}
"""


def _x(s: str) -> str:
    return html.escape(str(s), quote=True)


def _clip(s: str, width_px: float) -> str:
    n = max(4, int(width_px / _CHAR))
    return s if len(s) <= n else s[: n - 1] + "…"


def _lanes(data: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    used = {"client", "server", "server_key"}
    for e in entries:
        used.add(e["from"])
        used.add(e["to"])
    return [lane for lane in LANE_ORDER if lane in used]


def _tooltip(e: dict[str, Any]) -> str:
    lines = ["step %s, round %s: %s" % (e["step"], e["round"], STEPS.get(e["step"], ""))]
    if e["summary"]:
        lines.append(e["summary"])
    for k, v in e["fields"].items():
        lines.append("%s: %s" % (k, json.dumps(v) if not isinstance(v, str) else v))
    return "\n".join(lines)


def to_svg(data: dict[str, Any]) -> str:
    entries = visible_entries(data)
    lanes = _lanes(data, entries)
    lx = {lane: _LEFT + 90 + i * _GAP for i, lane in enumerate(lanes)}
    width = _LEFT + 90 + (len(lanes) - 1) * _GAP + 170
    body: list[str] = []
    y = _TOP + 40
    colors = {"client": "#0277bd", "server": "#2e7d32", "client_key": "#b8860b", "server_key": "#b8860b"}
    for e in entries:
        if e["kind"] == "round":
            rnd = e["round"]
            body.append(
                '<g class="row round step-11" data-step="11" data-round="%d">'
                '<rect x="8" y="%d" width="%d" height="%d" fill="#f3e5f5" rx="4"/>'
                '<circle cx="30" cy="%d" r="11" fill="#6a1b9a"/>'
                '<text class="badge" x="30" y="%d" text-anchor="middle">11</text>'
                '<text class="band" x="50" y="%d">11 · renegotiation — round %d: %s</text>'
                "<title>%s</title></g>"
                % (rnd, y - 4, width - 16, _BAND - 6, y + _BAND // 2 - 7, y + _BAND // 2 - 3,
                   y + _BAND // 2 - 3, rnd, _x(e["summary"]), _x(_tooltip(e)))
            )
            y += _BAND
            continue
        body.append(_row(e, lx, y, colors))
        y += _ROW
    height = y + 40 + 20 * ((len(STEPS) + 1) // 2)
    head = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
        'role="img" aria-label="TLS handshake sequence diagram">' % (width, height, width, height),
        "<title>TLS 1.2 handshake: %s</title>" % _x(headline(data)),
        "<style>%s</style>" % _CSS,
        '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/>'
        '</marker><marker id="arrk" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#b8860b"/>'
        '</marker><marker id="arra" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c62828"/>'
        "</marker></defs>",
        '<rect width="100%" height="100%" fill="#fff"/>',
        '<text class="title" x="16" y="26">TLS 1.2 handshake%s</text>'
        % _x(": " + data["title"] if data.get("title") else ""),
        '<text class="sub" x="16" y="44">%s</text>' % _x(headline(data)),
        '<text class="sub" x="16" y="60">steps numbered as in the classic SSL handshake '
        "description (1–11); dashed boxes: not observed from the traced side</text>",
        '<text class="time" x="16" y="%d">ms</text>' % (_TOP + 22),
    ]
    for lane in lanes:
        x = lx[lane]
        label = lane_label(lane, data)
        w = max(90, len(label) * 8.2 + 16)
        head.append(
            '<g class="lane lane-%s"><rect x="%.0f" y="%d" width="%.0f" height="28" rx="5" '
            'fill="%s"/><text class="lanehead" x="%d" y="%d" text-anchor="middle" '
            'style="fill:#fff">%s</text><line class="lifeline" x1="%d" y1="%d" x2="%d" y2="%d"/></g>'
            % (lane, x - w / 2, _TOP, w, colors[lane], x, _TOP + 19, _x(label), x, _TOP + 28, x, y)
        )
    legend = ['<g class="legend-block"><text class="label" x="16" y="%d">Steps</text>' % (y + 24)]
    for i, (n, name) in enumerate(STEPS.items()):
        col, row = i % 2, i // 2
        legend.append('<text class="legend" x="%d" y="%d">%d. %s</text>'
                      % (16 + col * (width // 2), y + 44 + row * 20, n, _x(name)))
    legend.append("</g>")
    return "\n".join(head + body + legend + ["</svg>"]) + "\n"


def _row(e: dict[str, Any], lx: dict[str, int], y: int, colors: dict[str, str]) -> str:
    step = e["step"]
    cls = "row kind-%s step-%s%s" % (e["kind"], step, "" if e["observed"] else " inferred")
    out = ['<g class="%s" data-step="%s" data-round="%d">' % (cls, step, e["round"])]
    out.append("<title>%s</title>" % _x(_tooltip(e)))
    if step:
        fill = "#6a1b9a" if step == 11 else "#455a64"
        out.append('<circle cx="30" cy="%d" r="11" fill="%s"/><text class="badge" x="30" y="%d" '
                   'text-anchor="middle">%d</text>' % (y + 10, fill, y + 14, step))
    if e["observed"]:
        out.append('<text class="time" x="50" y="%d">%.1f</text>' % (y + 14, e["t"] * 1000))
    a, b = e["from"], e["to"]
    if a != b and a in lx and b in lx:
        x1, x2 = lx[a], lx[b]
        kind = e["kind"]
        css = {"key_op": "keyop", "key_result": "keyop ret", "alert": "alert"}.get(kind, "msg")
        marker = {"keyop": "arrk", "keyop ret": "arrk", "alert": "arra"}.get(css, "arr")
        sign = 1 if x2 > x1 else -1
        out.append('<line class="%s" x1="%d" y1="%d" x2="%d" y2="%d" marker-end="url(#%s)"/>'
                   % (css, x1 + sign * 3, y + 12, x2 - sign * 3, y + 12, marker))
        mid = (x1 + x2) / 2
        span = abs(x2 - x1) - 16
        label = e["name"] + (" (%d B)" % e["size"] if e["size"] and kind == "message" else "")
        out.append('<text class="label" x="%.0f" y="%d" text-anchor="middle">%s</text>'
                   % (mid, y + 7, _x(_clip(label, span * 1.15))))
        if e["summary"]:
            out.append('<text class="small" x="%.0f" y="%d" text-anchor="middle">%s</text>'
                       % (mid, y + 26, _x(_clip(e["summary"], span * 1.1))))
    else:
        lane = a if a in lx else "server"
        x = lx[lane]
        text = e["name"]
        w = 230
        dash = "" if e["observed"] else ' stroke-dasharray="4 3"'
        fill = {"milestone": "#e3f2fd", "note": "#f1f8e9"}.get(e["kind"], "#fafafa")
        out.append('<rect x="%d" y="%d" width="%d" height="30" rx="6" fill="%s" stroke="%s"%s/>'
                   % (x - w // 2, y - 3, w, fill, colors.get(lane, "#999"), dash))
        out.append('<text class="label" x="%d" y="%d" text-anchor="middle"%s>%s</text>'
                   % (x, y + 9, "" if e["observed"] else ' font-style="italic"', _x(_clip(text, w - 10))))
        if e["summary"]:
            out.append('<text class="small" x="%d" y="%d" text-anchor="middle">%s</text>'
                       % (x, y + 22, _x(_clip(e["summary"], w * 1.05))))
    out.append("</g>")
    return "".join(out)


# -- HTML ---------------------------------------------------------------------------------


def to_html(data: dict[str, Any]) -> str:
    rows = []
    for e in visible_entries(data):
        fields = "".join(
            "<div><b>%s</b>: %s</div>" % (_x(k), _x(v if isinstance(v, str) else json.dumps(v)))
            for k, v in e["fields"].items()
        )
        rows.append(
            '<tr class="%s" data-step="%s" data-round="%d"><td>%s</td><td>%d</td><td>%s</td>'
            "<td>%s</td><td>%s</td><td>%s</td><td>%s%s</td></tr>"
            % ("inferred" if not e["observed"] else e["kind"], e["step"], e["round"],
               "%.1f" % (e["t"] * 1000) if e["observed"] else "",
               e["round"], e["step"] or "", _x(_arrow(e["from"], e["to"]) if e["from"] != e["to"] else e["from"]),
               _x(e["name"]), e["size"] or "", _x(e["summary"]), fields)
        )
    steps = "".join("<li value=\"%d\">%s</li>" % (n, _x(s)) for n, s in STEPS.items())
    title = "TLS handshake trace" + (": " + data["title"] if data.get("title") else "")
    return """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;font-size:12px;margin-top:16px}
td,th{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#eceff1}tr.round td{background:#f3e5f5;font-weight:bold}
tr.inferred td{color:#777;font-style:italic}tr.alert td{color:#c62828}
td div{font-family:monospace;font-size:11px;word-break:break-all;max-width:640px}
</style></head><body>
<h1>%s</h1>
<p>%s</p>
<figure>%s</figure>
<h2>Steps</h2><ol>%s</ol>
<h2>Entries</h2>
<table><thead><tr><th>ms</th><th>round</th><th>step</th><th>direction</th><th>what</th>
<th>bytes</th><th>details</th></tr></thead><tbody>
%s
</tbody></table>
</body></html>
""" % (_x(title), _x(title), _x(headline(data)), to_svg(data), steps, "\n".join(rows))
