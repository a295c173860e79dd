"""The node administrator's web console: jobs awaiting approval, decisions, budgets, audit.

The browser counterpart of `ensnif job pending|approve|reject`, `ensnif budget show`
and `ensnif audit verify|show`, served by the running node on its own port
(:mod:`ensnif_mpc.rpc.webconsole`). A decision goes through the same function as the
CLI's, :func:`party_node.admin.decide`: signed with the node's key and recorded; the
node applies it as it applies one from the CLI (an approval when the coordinator next
proposes the job, after re-checking policy and reserving budget). Accepts the start
token or the node's own certificate (its name, role ``party``): the same trust as a
shell on the node's host.
"""

from __future__ import annotations

from typing import Any

from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.jobs import manifest
from ensnif_mpc.rpc import webpages as wp
from ensnif_mpc.rpc.webconsole import Console, serve
from ensnif_mpc.rpc.webpages import esc
from ensnif_mpc.security.pki import Identity
from party_node import admin
from party_node.node import Node
from party_node.states import NodeState
from party_node.store import NodeJob


def job_summary(job: NodeJob) -> dict[str, Any]:
    p = job.progress
    done = job.state == NodeState.SUCCEEDED
    return {
        "id": job.job_id,
        "state": str(job.state),
        "fraction": 1.0 if done else float(p.get("fraction", 0) or 0),
        "phase": str(p.get("phase", "")),
        "reason": job.reason,
        "protocol": str(job.data.get("manifest", {}).get("protocol", "")),
    }


def _all_jobs(node: Node) -> list[NodeJob]:
    jobs = [j for state in NodeState for j in node.store.by_state(state)]
    return sorted(
        jobs, key=lambda j: j.updated_at.isoformat() if j.updated_at else "", reverse=True
    )


def _decision_forms(req: wp.Request, job_id: str) -> str:
    csrf = wp.csrf_field(req)
    jid = f'<input type="hidden" name="job" value="{esc(job_id)}">'
    return (
        f'<form method="post" action="/approve" class="decide">{csrf}{jid}'
        '<input name="approver" placeholder="your name" required aria-label="approver">'
        '<button type="submit" class="approve">Approve</button></form>'
        f'<form method="post" action="/reject" class="decide">{csrf}{jid}'
        '<input name="approver" placeholder="your name" required aria-label="approver">'
        '<input name="reason" placeholder="reason (shown to the analyst)" required '
        'aria-label="reason"><button type="submit" class="reject">Reject</button></form>'
    )


def _program_files(program: dict[str, Any]) -> str:
    """A member program's hash and every file, verbatim: what approving will run."""
    if not program:
        return ""
    files = "".join(
        f"<h3>{esc(path)}</h3><pre>{esc(text)}</pre>"
        for path, text in sorted(program.get("files", {}).items())
    )
    return f"<p>member program <code>{esc(program.get('hash', ''))}</code></p>{files}"


def build(node: Node) -> wp.App:
    name = node.cfg.name
    app = wp.App(
        title=f"Ensnif node {name}",
        nav=[("/", "Approvals"), ("/jobs", "Jobs"), ("/budgets", "Budgets"), ("/audit", "Audit")],
        get={},
        post={},
        accepts=lambda ident: _accepts(node, ident),
    )

    def pending(req: wp.Request) -> wp.Response:
        cards = []
        for p in admin.pending(node.store):
            try:
                text = manifest.render(p.manifest)
            except (KeyError, TypeError):
                text = "(no manifest recorded)"
            cards.append(
                f'<div class="card" data-pending="{esc(p.job_id)}"><h2>job {esc(p.job_id)}</h2>'
                f"<p>from <b>{esc(p.analyst)}</b>, proposed {wp.when(p.proposed_at)} UTC; "
                f"waits because: {esc(p.rule)}</p><pre>{esc(text)}</pre>"
                f"{_program_files(p.program)}"
                f"<p>job hash <code>{esc(p.job_hash)}</code></p>"
                f"{_decision_forms(req, p.job_id)}</div>"
            )
        body = "".join(cards) or '<p class="empty">nothing waits for approval</p>'
        note = req.query.get("done", "")
        if note:
            body = f'<p class="ok" id="notice">{esc(note)}</p>' + body
        return wp.page(app, f"Jobs awaiting approval at {name}", body, req)

    def decide(decision: str) -> wp.Handler:
        def handle(req: wp.Request) -> wp.Response:
            job_id = req.form.get("job", "")
            reason = req.form.get("reason", "") if decision == "rejected" else ""
            try:
                signed = admin.decide(
                    node.cfg, node.store, job_id, decision, req.form.get("approver", ""), reason
                )
            except EnsnifError as err:
                body = (
                    f'<p class="bad" id="error">{esc(err.message)}</p><p><a href="/">back</a></p>'
                )
                return wp.Response(409, wp.page(app, "Not recorded", body, req).body)
            done = f"job {job_id}: {decision} by {signed.approver} (signed with the node key)"
            from urllib.parse import quote

            return wp.redirect("/?done=" + quote(done))

        return handle

    def jobs(req: wp.Request) -> wp.Response:
        listed = _all_jobs(node)
        rows = []
        for job in listed:
            s = job_summary(job)
            rows.append(
                (
                    esc(job.job_id),
                    esc(s["protocol"]),
                    wp.when(job.updated_at),
                    f'<span data-field="state">{esc(s["state"])}</span>',
                    f'<span data-field="fraction">{wp.progress_bar(s["fraction"])}</span>',
                    f'<span data-field="phase">{esc(s["phase"])}</span>',
                    f'<span data-field="reason">{esc(s["reason"])}</span>',
                )
            )
        html = wp.table(
            ("job", "protocol", "updated (UTC)", "state", "progress", "phase", "reason"),
            rows,
            "no job proposed to this node yet",
            keys=[j.job_id for j in listed],
        )
        return wp.page(
            app, f"Jobs at {name}", f'<div data-poll="/api/jobs">{html}</div>', req, script=True
        )

    def api_jobs(req: wp.Request) -> wp.Response:
        return wp.json_response({"jobs": [job_summary(j) for j in _all_jobs(node)]})

    def budgets(req: wp.Request) -> wp.Response:
        rows = [
            (
                esc(line.dataset),
                esc(f"{float(line.cap):g}"),
                esc(f"{float(line.spent):g}"),
                esc(f"{float(line.reserved):g}"),
                esc(f"{float(line.remaining):g}"),
            )
            for line in node.ledger.show()
        ]
        body = "<p>From this node's ledger, the authority (zCDP ρ).</p>" + wp.table(
            ("dataset", "budget", "spent", "reserved", "remaining"), rows, "no dataset"
        )
        return wp.page(app, f"Privacy budgets of {name}", body, req)

    def audit(req: wp.Request) -> wp.Response:
        status, last = wp.audit_status(node.store.engine, node.cfg.tls.cert)
        return wp.page(app, "Audit", status + "<h2>Last records</h2>" + wp.audit_table(last), req)

    app.get.update(
        {"/": pending, "/jobs": jobs, "/api/jobs": api_jobs, "/budgets": budgets, "/audit": audit}
    )
    app.post.update({"/approve": decide("approved"), "/reject": decide("rejected")})
    return app


def _accepts(node: Node, ident: Identity) -> bool:
    return ident.role == "party" and ident.name == node.cfg.name


def start(node: Node) -> Console:
    cfg = node.cfg
    c = cfg.console
    return serve(
        build(node),
        c.listen,
        cfg.tls.ca,
        c.cert or cfg.tls.cert,
        c.key or cfg.tls.key,
        f"console of node {cfg.name}",
    )
