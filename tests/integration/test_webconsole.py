"""The consoles' shared server (ensnif_mpc/rpc/webconsole.py; pages: webpages.py) over
real HTTPS, without a browser: the headers on every answer, escaping, the token sign-in
and its cookie, CSRF, and which client certificates open a session.
tests/e2e/test_console.py drives the two consoles in Chromium."""

from __future__ import annotations

import datetime as dt
import http.client
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from ensnif_mpc.rpc import webconsole as wc, webpages as wp
from ensnif_mpc.security import pki
from tests.helpers import issue_pki, wait_for

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def members(tmp_path: Path) -> dict[str, pki.CertFiles]:
    return issue_pki(tmp_path, {"coordinator": "coordinator", "ann": "analyst"})


@pytest.fixture
def console(members: dict[str, pki.CertFiles]) -> Iterator[wc.Console]:
    app = wp.App(
        "test console",
        [("/", "Home")],
        {"/": lambda req: wp.page(app, "Home", f"<p>{wp.esc(req.query.get('q', ''))}</p>", req)},
        {"/act": lambda req: wp.json_response({"done": True})},
        accepts=lambda ident: ident.role == "coordinator",
    )
    own = members["coordinator"]
    running = wc.serve(app, "127.0.0.1:0", own.ca, own.cert, own.key, "test console")
    yield running
    running.stop()


def _call(
    console: wc.Console,
    ca: Path,
    method: str,
    path: str,
    body: str = "",
    headers: dict[str, str] | None = None,
    client: pki.CertFiles | None = None,
) -> http.client.HTTPResponse:
    ctx = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    conn = http.client.HTTPSConnection("127.0.0.1", console.port, context=ctx, timeout=10)
    extra = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    conn.request(method, path, body=body or None, headers={**extra, **(headers or {})})
    return conn.getresponse()


def _sign_in(console: wc.Console, ca: Path) -> tuple[str, str]:
    """The session cookie and the page's CSRF token."""
    r = _call(console, ca, "POST", "/login", f"token={console.token}")
    assert r.status == 303
    cookie = r.getheader("Set-Cookie", "").split(";")[0]
    page = _call(console, ca, "GET", "/", headers={"Cookie": cookie}).read().decode()
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    return cookie, csrf


def test_every_answer_carries_the_security_headers(
    console: wc.Console, members: dict[str, pki.CertFiles]
) -> None:
    ca = members["coordinator"].ca
    for path in ("/login", "/", "/static/console.js", "/nowhere"):
        r = _call(console, ca, "GET", path)
        r.read()
        assert r.getheader("Content-Security-Policy", "").startswith("default-src 'none'")
        assert r.getheader("Cache-Control") == "no-store"
        assert r.getheader("X-Content-Type-Options") == "nosniff"
        assert r.getheader("X-Frame-Options") == "DENY"


def test_the_token_opens_a_strict_session_and_values_are_escaped(
    console: wc.Console, members: dict[str, pki.CertFiles]
) -> None:
    ca = members["coordinator"].ca
    r = _call(console, ca, "POST", "/login", f"token={console.token}")
    cookie = r.getheader("Set-Cookie", "")
    assert cookie.startswith(wc.COOKIE + "=")
    assert all(flag in cookie for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"))
    from urllib.parse import quote

    page = _call(
        console, ca, "GET", "/?q=" + quote(HOSTILE), headers={"Cookie": cookie.split(";")[0]}
    )
    text = page.read().decode()
    assert HOSTILE not in text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text


def test_a_wrong_token_is_refused_and_opens_nothing(
    console: wc.Console, members: dict[str, pki.CertFiles]
) -> None:
    r = _call(console, members["coordinator"].ca, "POST", "/login", "token=guess")
    assert r.status == 403 and r.getheader("Set-Cookie") is None
    assert b"wrong token" in r.read()
    assert _call(console, members["coordinator"].ca, "GET", "/").status == 303


def test_a_post_needs_the_session_csrf_token_and_its_own_origin(
    console: wc.Console, members: dict[str, pki.CertFiles]
) -> None:
    ca = members["coordinator"].ca
    cookie, csrf = _sign_in(console, ca)
    assert _call(console, ca, "POST", "/act", "x=1", {"Cookie": cookie}).status == 403
    other = {"Cookie": cookie, "Origin": "https://elsewhere.example"}
    assert _call(console, ca, "POST", "/act", f"csrf={csrf}", other).status == 403
    same = {"Cookie": cookie, "Origin": f"https://127.0.0.1:{console.port}"}
    ok = _call(console, ca, "POST", "/act", f"csrf={csrf}", same)
    assert ok.status == 200 and ok.read() == b'{"done": true}'


def test_only_an_accepted_valid_client_certificate_opens_a_session(
    console: wc.Console,
    members: dict[str, pki.CertFiles],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ca = members["coordinator"].ca
    own = _call(console, ca, "GET", "/", client=members["coordinator"])
    assert own.status == 200 and own.getheader("Set-Cookie", "").startswith(wc.COOKIE)
    analyst = _call(console, ca, "GET", "/", client=members["ann"])
    assert analyst.status == 303 and analyst.getheader("Location") == "/login"
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    expired = pki.issue(
        tmp_path, "coordinator", "coordinator", days=1, not_before=past, out_dir=tmp_path / "old"
    )
    # TLS 1.3: the client learns it at its first read (the alert, or the connection closed).
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        _call(console, ca, "GET", "/", client=expired).read()
    wait_for(
        lambda: "refused a TLS connection: certificate has expired" in caplog.text,
        10,
        "the console logging the expired certificate",
    )
