"""The consoles' page kit: requests, responses and apps, escaping, layout, tables, the
live-progress script and the style sheet (served by :mod:`ensnif_mpc.rpc.webconsole`).

Every value put into a page goes through :func:`esc`; the helpers take HTML already
escaped. The only script and style are :data:`STATIC` (the CSP allows nothing else).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from ensnif_mpc.security.pki import Identity, load_cert


def esc(value: object) -> str:
    """The only way a value enters a page."""
    return html.escape(str(value), quote=True)


# -- requests, responses, apps -------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    form: Mapping[str, str]
    who: str  # "token" or the client certificate's name
    csrf: str  # the session's token, for the forms a page renders


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: str = ""
    content_type: str = "text/html; charset=utf-8"
    location: str = ""


def redirect(location: str) -> Response:
    return Response(HTTPStatus.SEE_OTHER, location=location)


def json_response(data: Any) -> Response:
    return Response(body=json.dumps(data), content_type="application/json")


Handler = Callable[[Request], Response]


@dataclass
class App:
    """A console: its title, its navigation, its routes and whose certificates it accepts.

    Routes are exact paths, except a key ending in ``/*`` that takes any path below it
    (the handler reads the rest from ``request.path``).
    """

    title: str
    nav: list[tuple[str, str]]  # (path, label)
    get: dict[str, Handler]
    post: dict[str, Handler]
    accepts: Callable[[Identity], bool]

    def route(self, method: str, path: str) -> Handler | None:
        table = self.get if method == "GET" else self.post
        if path in table:
            return table[path]
        for key, handler in table.items():
            if key.endswith("/*") and path.startswith(key[:-1]) and len(path) > len(key) - 1:
                return handler
        return None


# -- the page kit ---------------------------------------------------------------------------
def page(
    app: App, title: str, body: str, req: Request | None = None, *, script: bool = False
) -> Response:
    """A whole page around ``body`` (already escaped HTML)."""
    nav = "".join(f'<a href="{esc(p)}">{esc(label)}</a>' for p, label in app.nav)
    logout = (
        f'<form method="post" action="/logout" class="logout">{csrf_field(req)}'
        f'<span>signed in: {esc(req.who)}</span><button type="submit">Sign out</button></form>'
        if req is not None
        else ""
    )
    js = '<script src="/static/console.js" defer></script>' if script else ""
    return Response(
        body="<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)} · {esc(app.title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="/static/console.css">{js}</head><body>'
        f"<header><strong>{esc(app.title)}</strong><nav>{nav}</nav>{logout}</header>"
        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )


def table(
    headers: Iterable[str],
    rows: Iterable[Iterable[str]],
    empty: str = "none",
    keys: Iterable[str] | None = None,
) -> str:
    """A table; ``rows`` hold HTML already escaped (use :func:`esc`). ``keys``: each row's
    job id, which the live-progress script finds the row by."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    marks = [f' data-job="{esc(k)}"' for k in keys] if keys is not None else None
    body = "".join(
        f"<tr{marks[n] if marks else ''}>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
        for n, r in enumerate(rows)
    )
    if not body:
        return f'<p class="empty">{esc(empty)}</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def not_found(app: App, message: str, req: Request | None = None) -> Response:
    return Response(404, page(app, "Not found", f'<p class="bad">{esc(message)}</p>', req).body)


def csrf_field(req: Request | None) -> str:
    return "" if req is None else f'<input type="hidden" name="csrf" value="{esc(req.csrf)}">'


def progress_bar(fraction: float, label: str = "") -> str:
    pct = max(0, min(100, round(100 * float(fraction or 0))))
    return f'<progress max="100" value="{pct}"></progress> <span class="pct">{pct} %</span>' + (
        f' <span class="phase">{esc(label)}</span>' if label else ""
    )


def when(value: dt.datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    text = value.isoformat() if isinstance(value, dt.datetime) else str(value)
    return esc(text[:19].replace("T", " "))


def audit_status(engine: Any, cert_path: Path, limit: int = 30) -> tuple[str, list[Any]]:
    """The verification of a daemon's audit chain (as `ensnif audit verify` does, with the
    daemon's certificate) as HTML, and its last ``limit`` records."""
    from collections import deque

    from ensnif_mpc.audit import chain

    last: deque[Any] = deque(maxlen=limit)

    def keep(rows: Iterable[Any]) -> Iterable[Any]:
        for r in rows:
            last.append(r)
            yield r

    try:
        with engine.connect() as conn:
            rows, anchor, _ = chain.read(conn)
            report = chain.verify(keep(rows), anchor, load_cert(cert_path).public_key())
    except chain.AuditBroken as exc:
        return f'<p class="bad">audit log BROKEN: {esc(exc)}</p>', list(last)
    signed = "anchor signature verified" if report.signature_checked else "anchor not signed"
    notes = "".join(f"<li>{esc(n)}</li>" for n in report.notes)
    return (
        f'<p class="ok">audit log OK: {report.records} records, head record '
        f"{report.head_seq} <code>{esc(report.head_hash[:16])}…</code>, {esc(signed)}</p>"
        + (f"<ul>{notes}</ul>" if notes else ""),
        list(last),
    )


def audit_table(records: Iterable[Any]) -> str:
    rows = [
        (
            esc(seq),
            when(at),
            esc(event),
            esc(", ".join(f"{k}={v}" for k, v in details.items())),
        )
        for seq, at, event, details, _, _ in reversed(list(records))
    ]
    return table(("seq", "at (UTC)", "event", "details"), rows, "no audit records")


# -- static files (the page's only script and style) -------------------------------------------
_JS = """\
// Live progress: poll the console's JSON and update the cells marked data-job/data-field.
(function () {
  var body = document.body, url = document.querySelector('main [data-poll]');
  if (!url) return;
  url = url.getAttribute('data-poll');
  function pct(f) { return Math.max(0, Math.min(100, Math.round(100 * (f || 0)))); }
  function tick() {
    fetch(url, {credentials: 'same-origin', cache: 'no-store'}).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.json();
    }).then(function (data) {
      (data.jobs || []).forEach(function (job) {
        var row = document.querySelector('tr[data-job="' + CSS.escape(job.id) + '"]');
        if (!row) return;
        row.querySelectorAll('[data-field]').forEach(function (el) {
          var key = el.getAttribute('data-field');
          if (key === 'fraction') {
            var bar = el.querySelector('progress'), label = el.querySelector('.pct');
            if (bar) bar.value = pct(job.fraction);
            if (label) label.textContent = pct(job.fraction) + ' %';
          } else if (job[key] !== undefined) {
            el.textContent = String(job[key]);
          }
        });
      });
      body.setAttribute('data-polled', String(Date.now()));
    }).catch(function () {}).then(function () { setTimeout(tick, 1000); });
  }
  tick();
})();
"""

_CSS = """\
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1c2430;background:#f6f7f9}
header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#1f3a5f;color:#fff}
header nav a{color:#dfe8f5;margin-right:1em;text-decoration:none}
header .logout{margin-left:auto;display:flex;gap:.6em;align-items:center}
main{padding:1em 1.5em;max-width:1100px}
h1{font-size:1.3em;margin:.2em 0 .8em}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:1em}
th,td{border:1px solid #d5dbe3;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#eef1f5}
.ok{color:#176d2c;font-weight:600}.bad{color:#a1181d;font-weight:600}
.card{background:#fff;border:1px solid #d5dbe3;padding:.8em 1em;margin-bottom:1em}
pre{white-space:pre-wrap;background:#f0f2f5;padding:.6em;font-size:12px}
progress{width:8em;vertical-align:middle}
.empty{color:#667}
form.decide{display:inline-flex;gap:.5em;margin:.3em 1em .3em 0}
"""

STATIC = {
    "/static/console.js": (_JS, "text/javascript; charset=utf-8"),
    "/static/console.css": (_CSS, "text/css; charset=utf-8"),
}
