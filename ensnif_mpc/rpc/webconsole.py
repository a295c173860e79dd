"""The daemons' web consoles: one small HTTPS server and its sign-in.

Both consoles (``coordinator/console.py``, ``party_node/console.py``) are an
:class:`~ensnif_mpc.rpc.webpages.App` (routes to plain functions returning a
:class:`~ensnif_mpc.rpc.webpages.Response`, pages from that module's kit) served by
:func:`serve` on their own port, in a thread of the daemon, from the standard library
only (``http.server``; no framework). What this module guarantees for every page:

- **TLS.** The console speaks HTTPS with the daemon's consortium certificate (or the
  ``console_cert``/``console_key`` of its config), re-read when the files change (a
  `ensnif pki rotate` needs no restart). An expired certificate is served as it is and
  named in the daemon's log: browsers refuse it, which is the point.
- **Who.** A request is authenticated by a client certificate of the consortium CA that
  the app accepts (mutual TLS: the daemon's own identity, not revoked), or by a session
  opened with the token :func:`serve` makes at each start and the daemon prints once
  (for a browser on the same host). A wrong token is refused and logged, never echoed.
- **CSRF.** Sessions are ``__Host-`` cookies, ``HttpOnly; Secure; SameSite=Strict``;
  every POST needs the session's CSRF token in its form and, when the browser sends
  one, an ``Origin`` equal to the console's; state changes are POST only.
- **Output.** Everything interpolated into HTML goes through :func:`esc`; every
  response carries a strict Content-Security-Policy (scripts and styles only from
  ``/static``), ``Cache-Control: no-store``, ``nosniff``, no cross-site referrer, no framing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509

from ensnif_mpc.errors import InvalidConfig, Unavailable
from ensnif_mpc.rpc.webpages import STATIC, App, Request, Response, esc, page, redirect
from ensnif_mpc.security import revocation
from ensnif_mpc.security.pki import identity_of, load_cert

log = logging.getLogger(__name__)

COOKIE = "__Host-ensnif-console"
SESSION_IDLE_S = 8 * 3600.0
MAX_FORM_BYTES = 64 * 1024
HANDSHAKE_TIMEOUT_S = 10.0
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes Chromium send `Origin: null`
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass
class Session:
    csrf: str
    who: str
    seen: float


# -- TLS --------------------------------------------------------------------------------------
class _Contexts:
    """The console's server SSL context, rebuilt when its certificate files change."""

    def __init__(self, ca: Path, cert: Path, key: Path, label: str) -> None:
        self.ca, self.cert, self.key, self.label = ca, cert, key, label
        self._stamp: tuple[Any, ...] = ()
        self._ctx: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self.current()

    def _read_stamp(self) -> tuple[Any, ...]:
        try:
            return tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (self.cert, self.key))
        except OSError as exc:
            raise InvalidConfig(f"{self.label}: cannot read {exc.filename}") from exc

    def current(self) -> ssl.SSLContext:
        with self._lock:
            stamp = self._read_stamp()
            if self._ctx is None or stamp != self._stamp:
                self._ctx = self._build()
                self._stamp = stamp
            return self._ctx

    def _build(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.cert, self.key)
            ctx.load_verify_locations(self.ca)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidConfig(f"{self.label}: cannot load its certificate: {exc}") from exc
        ctx.verify_mode = ssl.CERT_OPTIONAL  # a client certificate, or the token
        cert = load_cert(self.cert)
        end = cert.not_valid_after_utc
        if end <= dt.datetime.now(dt.UTC):
            log.error(
                "%s: its certificate %s EXPIRED on %s; browsers will refuse the console "
                "until it is replaced (`ensnif pki rotate %s`, no restart needed)",
                self.label,
                self.cert,
                end.isoformat(),
                identity_of(cert).name,
            )
        return ctx


# -- the server -------------------------------------------------------------------------------
@dataclass
class Console:
    """A running console: where it listens, its token, and how to stop it."""

    label: str
    url: str
    port: int
    token: str
    _server: ThreadingHTTPServer
    _thread: threading.Thread

    def banner(self) -> str:
        """The one line the daemon prints at start (the only place the token appears)."""
        return (
            f"{self.label} at {self.url} (sign in with token {self.token}; a new one at each start)"
        )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App, contexts: _Contexts) -> None:
        self.app = app
        self.contexts = contexts
        self.token = secrets.token_urlsafe(24)
        self.sessions: dict[str, Session] = {}
        self.sessions_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS in the request's own thread (a slow handshake blocks no one else)."""
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            conn = self.contexts.current().wrap_socket(request, server_side=True)
        except ssl.SSLCertVerificationError as exc:  # a client certificate we do not trust
            log.warning("%s: refused a TLS connection: %s", self.app.title, _ssl_reason(exc))
            return
        except (ssl.SSLError, OSError) as exc:  # e.g. a browser giving up on a connection
            log.debug("%s: a TLS handshake failed: %s", self.app.title, _ssl_reason(exc))
            return
        conn.settimeout(60)
        try:
            super().finish_request(conn, client_address)
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("%s: a connection ended with an error", self.app.title, exc_info=True)


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None)
    return str(reason or exc.__class__.__name__)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "ensnif-console"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        log.debug("%s: " + format, self.server.app.title, *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    # -- authentication -----------------------------------------------------------------
    def _certificate_identity(self) -> str:
        """The name of an accepted client certificate ("" if none or not accepted)."""
        der = (
            self.connection.getpeercert(binary_form=True)
            if hasattr(self.connection, "getpeercert")
            else None
        )
        if not der:
            return ""
        cert = x509.load_der_x509_certificate(der)
        ident = identity_of(cert)
        if revocation.revoked(cert) or not self.server.app.accepts(ident):
            log.warning(
                "%s: client certificate of %s (%s) not accepted",
                self.server.app.title,
                ident.name,
                ident.role,
            )
            return ""
        return ident.name

    def _session(self) -> tuple[str, Session] | None:
        raw = self.headers.get("Cookie", "")
        for part in raw.split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and value:
                with self.server.sessions_lock:
                    s = self.server.sessions.get(value)
                    if s is not None and time.monotonic() - s.seen < SESSION_IDLE_S:
                        s.seen = time.monotonic()
                        return value, s
                    self.server.sessions.pop(value, None)
        return None

    def _new_session(self, who: str) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        s = Session(secrets.token_urlsafe(32), who, time.monotonic())
        with self.server.sessions_lock:
            now = time.monotonic()
            for k in [k for k, v in self.server.sessions.items() if now - v.seen > SESSION_IDLE_S]:
                del self.server.sessions[k]
            self.server.sessions[sid] = s
        return sid, s

    # -- dispatch ------------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        try:
            self._dispatch(method)
        except Exception:  # a page must never show a traceback
            log.exception("%s: %s %s failed", self.server.app.title, method, self.path)
            self._send(Response(500, "<p>internal error: see the daemon's log</p>"))

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if method == "GET" and path in STATIC:
            body, ctype = STATIC[path]
            self._send(Response(body=body, content_type=ctype))
            return
        form: dict[str, str] = {}
        if method == "POST":
            if not self._same_origin():
                self._send(Response(403, _plain(app, "Refused", "cross-origin request refused")))
                return
            form = self._read_form()
        if path == "/login":
            self._login(method, form)
            return
        found = self._session()
        cookie = ""
        if found is None and (name := self._certificate_identity()):
            found = self._new_session(name)
            cookie = found[0]
        if found is None:
            if method == "GET" and not path.startswith("/api/"):
                self._send(redirect("/login"))
            else:
                self._send(Response(401, _plain(app, "Sign in", "not signed in")))
            return
        sid, session = found
        if method == "POST" and not hmac.compare_digest(form.get("csrf", ""), session.csrf):
            self._send(Response(403, _plain(app, "Refused", "missing or wrong CSRF token")))
            return
        if method == "POST" and path == "/logout":
            with self.server.sessions_lock:
                self.server.sessions.pop(sid, None)
            self._send(redirect("/login"), clear_cookie=True)
            return
        handler = app.route(method, path)
        if handler is None:
            self._send(Response(404, _plain(app, "Not found", f"no page {path}")))
            return
        req = Request(method, path, query, form, session.who, session.csrf)
        self._send(handler(req), cookie=cookie)

    def _login(self, method: str, form: Mapping[str, str]) -> None:
        app = self.server.app
        if method == "GET":
            self._send(_login_page(app, ""))
            return
        given = form.get("token", "")
        if not hmac.compare_digest(given.encode(), self.server.token.encode()):
            log.warning("%s: a login with a wrong token was refused", app.title)
            self._send(
                _login_page(app, "wrong token: use the one the daemon printed at start", 403)
            )
            return
        sid, _ = self._new_session("token")
        log.info("%s: signed in with the start token", app.title)
        self._send(redirect("/"), cookie=sid)

    def _same_origin(self) -> bool:
        origin = self.headers.get("Origin")
        if origin is None:
            return True  # not sent by every client; the CSRF token still decides
        host = self.headers.get("Host", "")
        return bool(host) and origin == f"https://{host}"

    def _read_form(self) -> dict[str, str]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = 0
        if not 0 <= length <= MAX_FORM_BYTES:
            return {}
        raw = self.rfile.read(length).decode("utf-8", "replace")
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def _send(self, r: Response, cookie: str = "", clear_cookie: bool = False) -> None:
        body = r.body.encode()
        self.send_response(r.status)
        for k, v in HEADERS.items():
            self.send_header(k, v)
        self.send_header("Content-Type", r.content_type)
        self.send_header("Content-Length", str(len(body)))
        if r.location:
            self.send_header("Location", r.location)
        if cookie:
            self.send_header(
                "Set-Cookie", f"{COOKIE}={cookie}; Path=/; Secure; HttpOnly; SameSite=Strict"
            )
        if clear_cookie:
            self.send_header(
                "Set-Cookie", f"{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
            )
        self.end_headers()
        self.wfile.write(body)


def _plain(app: App, title: str, message: str) -> str:
    return page(app, title, f'<p class="bad">{esc(message)}</p>').body


def _login_page(app: App, error: str, status: int = 200) -> Response:
    err = f'<p class="bad" id="login-error">{esc(error)}</p>' if error else ""
    body = (
        f"{err}<p>Paste the token the daemon printed when it started (it changes at "
        "every start), or connect with a client certificate the console accepts.</p>"
        '<form method="post" action="/login" class="login">'
        '<label>token <input type="password" name="token" id="token" autocomplete="off" '
        'required></label> <button type="submit" id="signin">Sign in</button></form>'
    )
    r = page(app, "Sign in", body)
    return Response(status, r.body)


def serve(app: App, listen: str, ca: Path, cert: Path, key: Path, label: str) -> Console:
    """Start ``app`` on ``listen`` (port 0: any free one) in a daemon thread."""
    contexts = _Contexts(ca, cert, key, label)
    host, port = _split(listen)
    try:
        server = _Server((host, port), app, contexts)
    except OSError as exc:
        raise Unavailable(f"{label}: cannot listen on {listen}: {exc.strerror}") from exc
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    thread = threading.Thread(target=server.serve_forever, name=f"{label}", daemon=True)
    thread.start()
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("%s listens on %s, not only on this host", label, listen)
    log.info("%s at https://%s:%d/", label, shown, bound)
    return Console(label, f"https://{shown}:{bound}/", bound, server.token, server, thread)
