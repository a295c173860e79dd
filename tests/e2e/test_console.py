"""The web consoles in a real browser: headless Chromium (Debian's, driven by playwright)
against the consoles of the real daemons of the module's consortium.

The coordinator's and grocery's consoles are switched on (``console_listen``) and the
daemons restarted; grocery approves every job by hand. The browser trusts the
consortium CA through an NSS database of its own (nothing of this host's trust is
touched). ``ENSNIF_CONSOLE_SCREENSHOTS=docs/img`` writes the pages' screenshots there
(docs/operations.md shows them); otherwise they go to the test's temporary directory.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ensnif_mpc.cli.demo_cmd import plaintext_answer
from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.security import pki
from tests.consortium import OwnerPolicy, write_policy
from tests.e2e.conftest import run_cli
from tests.helpers import wait_for

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BANNER = re.compile(r"console\S* .*?at (https://\S+) \(sign in with token (\S+);")

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.consortium(rows=500),
    pytest.mark.skipif(
        not CHROMIUM.exists() or shutil.which("certutil") is None,
        reason="needs Debian's chromium and certutil (scripts/ensure_chromium.sh installs both)",
    ),
]


@dataclass(frozen=True)
class Site:
    url: str
    token: str


def _enable_console(lc: LocalConsortium, member: str, *extra: str) -> None:
    """Put the console keys at the top of the member's config (before any table)."""
    path = lc.members[member].config
    keys = ['console_listen = "127.0.0.1:0"', *extra]
    lines = [line for line in path.read_text().splitlines() if not line.startswith("console_")]
    path.write_text("\n".join([*keys, *lines]) + "\n")


def _site(lc: LocalConsortium, member: str, skip: int) -> Site:
    log = lc.members[member].log

    def banner() -> Any:
        found = BANNER.findall(log.read_text()[skip:])
        return found[-1] if found else None

    url, token = wait_for(
        banner, 60, lambda: f"{member}'s console banner in:\n{log.read_text()[-2000:]}"
    )
    return Site(url, token)


def _restart_with_console(lc: LocalConsortium, member: str, *extra: str) -> Site:
    _enable_console(lc, member, *extra)
    skip = len(lc.members[member].log.read_text())
    lc.restart(member)
    return _site(lc, member, skip)


@pytest.fixture(scope="module")
def sites(lc: LocalConsortium) -> dict[str, Site]:
    write_policy(lc.root, "grocery", OwnerPolicy(approval="manual"))
    out = {m: _restart_with_console(lc, m) for m in ("coordinator", "grocery")}
    lc.wait_ready(timeout_s=60)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, lc: LocalConsortium) -> Iterator[Any]:
    """Chromium with its own HOME, whose NSS database trusts the consortium CA."""
    home = tmp_path_factory.mktemp("browser-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run(
        ["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "ensnif-ca", "-i"]
        + [str(lc.pki_dir / pki.CA_CERT)],
        check=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSNIF_", "PYTEST"))}
    env["HOME"] = str(home)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, env=env)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("ENSNIF_CONSOLE_SCREENSHOTS", "")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        return Path(wanted)
    return tmp_path_factory.mktemp("screenshots")


def _signed_in(browser: Any, site: Site) -> Any:
    page = browser.new_context(viewport={"width": 1100, "height": 640}).new_page()
    page.goto(site.url)
    page.fill("#token", site.token)
    page.click("#signin")
    page.wait_for_selector("header nav")
    return page


def _shot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"console-{name}.png"))


def test_a_wrong_token_is_refused(browser: Any, sites: dict[str, Site], shots: Path) -> None:
    page = browser.new_context(viewport={"width": 1100, "height": 420}).new_page()
    page.goto(sites["coordinator"].url)
    assert page.url.endswith("/login")
    page.fill("#token", "not-" + sites["coordinator"].token)
    with page.expect_response(lambda r: r.url.endswith("/login")) as answer:
        page.click("#signin")
    assert answer.value.status == 403
    assert "wrong token" in page.inner_text("#login-error")
    _shot(page, shots, "login-refused")
    page.goto(sites["coordinator"].url + "audit")  # still not signed in
    assert page.url.endswith("/login")
    assert not page.context.cookies()


def test_an_approval_in_the_node_console_runs_the_job_and_the_coordinator_shows_it_live(
    browser: Any, sites: dict[str, Site], lc: LocalConsortium, shots: Path
) -> None:
    coordinator = _signed_in(browser, sites["coordinator"])
    node = _signed_in(browser, sites["grocery"])
    spec = jobspec.load(lc.root / "jobs" / "revenue-sum.toml")
    with lc.client() as c:
        job = c.submit(spec)

    coordinator.goto(sites["coordinator"].url)  # the jobs page; from here on it only polls
    state = coordinator.locator(f'tr[data-job="{job.id}"] [data-field="state"]')
    state.wait_for()
    wait_for(lambda: _reload_until(node, f'[data-pending="{job.id}"]'), 60, "the job pending")
    assert "threshold t = 1" in node.inner_text(f'[data-pending="{job.id}"] pre')
    _shot(node, shots, "node-approvals")
    coordinator.wait_for_function(
        "id => document.querySelector(`tr[data-job='${id}'] [data-field=state]`).textContent"
        " === 'awaiting_approval'",
        arg=job.id,
        timeout=60_000,
    )

    card = node.locator(f'[data-pending="{job.id}"]')
    card.locator("form[action='/approve'] input[name=approver]").fill("alice")
    card.locator("button.approve").click()
    assert "approved by alice" in node.inner_text("#notice")

    coordinator.wait_for_function(
        "id => document.querySelector(`tr[data-job='${id}'] [data-field=state]`).textContent"
        " === 'succeeded'",
        arg=job.id,
        timeout=120_000,
    )  # no reload: the page's script polled it
    row = coordinator.locator(f'tr[data-job="{job.id}"]')
    assert "100 %" in row.inner_text()
    _shot(coordinator, shots, "coordinator-jobs")
    with lc.client() as c:
        values = c.result(job.id)
    assert float(values["sum"]) == pytest.approx(plaintext_answer(lc, spec)["sum"], abs=1e-6)
    status = run_cli(lc, "job", "status", job.id, "--json").json()
    approvals = {a["party"]: (a["approver"], a["check"]) for a in status["approvals"]}
    assert approvals["grocery"] == ("alice", "verified")  # signed by the node's key

    node.goto(sites["grocery"].url + "jobs")
    assert "succeeded" in node.inner_text(f'tr[data-job="{job.id}"]')
    _shot(node, shots, "node-jobs")
    node.goto(sites["grocery"].url + "budgets")
    ledger = run_cli(lc, "budget", "show", "--config", str(lc.members["grocery"].config), "--json")
    shown = node.inner_text("table")
    for line in ledger.json()["budgets"]:  # the page shows the ledger `budget show` reads
        assert line["dataset"] in shown and f"{line['remaining_rho']:g}" in shown
    _shot(node, shots, "node-budgets")


def _reload_until(page: Any, selector: str) -> bool:
    page.reload()
    return bool(page.query_selector(selector))


def test_every_page_renders_and_the_audit_logs_verify(
    browser: Any, sites: dict[str, Site], shots: Path
) -> None:
    coordinator = _signed_in(browser, sites["coordinator"])
    for path, name, expect in (
        ("parties", "coordinator-parties", "helper"),
        ("datasets", "coordinator-datasets", "remaining ρ"),
        ("audit", "coordinator-audit", "audit log OK"),
    ):
        coordinator.goto(sites["coordinator"].url + path)
        assert expect in coordinator.inner_text("main")
        _shot(coordinator, shots, name)
    node = _signed_in(browser, sites["grocery"])
    node.goto(sites["grocery"].url + "audit")
    assert "audit log OK" in node.inner_text("main")
    _shot(node, shots, "node-audit")


def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(
    browser: Any, sites: dict[str, Site], lc: LocalConsortium
) -> None:
    site = sites["grocery"]
    node = _signed_in(browser, site)
    post = """async (form) => {
        const r = await fetch('/approve', {method: 'POST', body: new URLSearchParams(form)});
        return [r.status, await r.text()];
    }"""
    status, text = node.evaluate(post, {"job": "j-x", "approver": "mallory"})
    assert status == 403 and "CSRF" in text  # the session cookie alone is not enough
    assert node.evaluate("async () => (await fetch('/approve')).status") == 404  # POST only

    # The right cookie and CSRF token, but sent from another site's page: refused by Origin.
    node.goto(site.url + "jobs")
    csrf = node.get_attribute("form.logout input[name=csrf]", "value")
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in node.context.cookies())
    host, port = site.url.removeprefix("https://").rstrip("/").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(lc.pki_dir / pki.CA_CERT))
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    conn.request(
        "POST",
        "/logout",
        body=f"csrf={csrf}",
        headers={
            "Cookie": cookie,
            "Origin": "https://evil.example",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    answer = conn.getresponse()
    assert answer.status == 403 and b"cross-origin" in answer.read()
    node.goto(site.url + "jobs")
    assert node.url.endswith("/jobs")  # still signed in: the forged logout did nothing


def _expired(lc: LocalConsortium, name: str, role: str, out: Path) -> pki.CertFiles:
    out.mkdir(parents=True, exist_ok=True)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    return pki.issue(lc.pki_dir, name, role, days=1, not_before=past, out_dir=out)


def test_a_console_serving_an_expired_certificate_is_refused_by_the_browser(
    browser: Any, lc: LocalConsortium, tmp_path: Path
) -> None:
    expired = _expired(lc, "helper", "party", tmp_path / "expired")
    site = _restart_with_console(
        lc, "helper", f'console_cert = "{expired.cert}"', f'console_key = "{expired.key}"'
    )
    page = browser.new_page()
    with pytest.raises(playwright_api.Error, match="ERR_CERT_DATE_INVALID"):
        page.goto(site.url)
    log = lc.members["helper"].log.read_text()
    assert "EXPIRED" in log and "browsers will refuse the console" in log


def _https_get(url: str, ca: Path, client: pki.CertFiles | None) -> http.client.HTTPResponse:
    ctx = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    host, port = url.removeprefix("https://").rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    conn.request("GET", "/budgets")
    return conn.getresponse()


def test_mutual_tls_admits_the_nodes_own_certificate_only_while_valid(
    sites: dict[str, Site], lc: LocalConsortium, tmp_path: Path
) -> None:
    ca = lc.pki_dir / pki.CA_CERT
    own = pki.CertFiles(ca, lc.pki_dir / "grocery.crt", lc.pki_dir / "grocery.key")
    answer = _https_get(sites["grocery"].url, ca, own)
    assert answer.status == 200 and b"Privacy budgets of grocery" in answer.read()
    analyst = _https_get(sites["grocery"].url, ca, lc_analyst(lc))
    assert analyst.status == 303 and analyst.getheader("Location") == "/login"
    expired = _expired(lc, "grocery", "party", tmp_path / "expired")
    # TLS 1.3: the client learns it at its first read (an alert, or the connection closed).
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        _https_get(sites["grocery"].url, ca, expired).read()
    log = lc.members["grocery"].log
    wait_for(
        lambda: "refused a TLS connection: certificate has expired" in log.read_text(),
        10,
        "grocery's console logging the expired client certificate",
    )


def lc_analyst(lc: LocalConsortium) -> pki.CertFiles:
    from ensnif_mpc.config import ClientProfile

    return ClientProfile.load(lc.profile).tls
