"""The coordinator's web console: jobs with live progress, parties, datasets, audit status.

Read-only: it shows what the coordinator's store holds (job states and progress, the
registry, the catalog with each dataset's budget as the owner's node last mirrored it,
the audit chain verified with the coordinator's certificate) and never anything the
coordinator does not have (no data, shares or results). Served by
:mod:`ensnif_mpc.rpc.webconsole`; accepts the token or the coordinator's own
certificate (role ``coordinator``, the config's name).
"""

from __future__ import annotations

from typing import Any

from coordinator.store import JobRecord, Store
from ensnif_mpc.config import CoordinatorConfig
from ensnif_mpc.errors import UnknownJob
from ensnif_mpc.rpc import webpages as wp
from ensnif_mpc.rpc.webconsole import Console, serve
from ensnif_mpc.rpc.webpages import esc
from ensnif_mpc.security.pki import Identity


def _fraction(job: JobRecord) -> float:
    parties = [p for p in job.progress.values() if isinstance(p, dict)]
    if job.state.value == "succeeded":
        return 1.0
    if not parties:
        return 0.0
    return sum(float(p.get("fraction", 0) or 0) for p in parties) / len(parties)


def _phase(job: JobRecord) -> str:
    phases = sorted({str(p.get("phase", "")) for p in job.progress.values() if isinstance(p, dict)})
    return ", ".join(p for p in phases if p)


def job_summary(job: JobRecord) -> dict[str, Any]:
    """What the console shows of a job (also its JSON for the live progress)."""
    return {
        "id": job.id,
        "state": job.state.value,
        "protocol": job.spec.protocol,
        "name": job.spec.name,
        "submitter": job.submitter,
        "fraction": round(_fraction(job), 4),
        "phase": _phase(job),
        "reason": job.reason,
        "parties": {
            party: {
                "state": str(p.get("state", "")),
                "phase": str(p.get("phase", "")),
                "fraction": float(p.get("fraction", 0) or 0),
            }
            for party, p in sorted(job.progress.items())
            if isinstance(p, dict)
        },
    }


def build(cfg: CoordinatorConfig, store: Store) -> wp.App:
    app = wp.App(
        title=f"Ensnif coordinator {cfg.name}",
        nav=[
            ("/", "Jobs"),
            ("/parties", "Parties"),
            ("/datasets", "Datasets"),
            ("/audit", "Audit"),
        ],
        get={},
        post={},
        accepts=lambda ident: _accepts(cfg, ident),
    )

    def jobs(req: wp.Request) -> wp.Response:
        listed = store.list_jobs(limit=100)
        rows = []
        for job in listed:
            s = job_summary(job)
            rows.append(
                (
                    f'<a href="/jobs/{esc(job.id)}">{esc(job.id)}</a>',
                    esc(s["protocol"]),
                    esc(s["submitter"]),
                    wp.when(job.created_at),
                    f'<span data-field="state">{esc(s["state"])}</span>',
                    f'<span data-field="fraction">{wp.progress_bar(s["fraction"])}</span>',
                    f'<span data-field="phase">{esc(s["phase"])}</span>',
                    f'<span data-field="reason">{esc(s["reason"])}</span>',
                )
            )
        headers = ("job", "protocol", "analyst", "submitted (UTC)", "state", "progress")
        html = wp.table(
            (*headers, "phase", "reason"), rows, "no jobs yet", keys=[j.id for j in listed]
        )
        return wp.page(app, "Jobs", f'<div data-poll="/api/jobs">{html}</div>', req, script=True)

    def job(req: wp.Request) -> wp.Response:
        job_id = req.path.removeprefix("/jobs/")
        try:
            s = job_summary(store.get_job(job_id))
        except UnknownJob:
            return wp.not_found(app, f"no job {job_id}", req)
        parties = wp.table(
            ("party", "state", "phase", "progress"),
            [
                (esc(name), esc(p["state"]), esc(p["phase"]), wp.progress_bar(p["fraction"]))
                for name, p in s["parties"].items()
            ],
            "no party has reported yet",
        )
        body = (
            f'<div class="card"><p>protocol <b>{esc(s["protocol"])}</b>, analyst '
            f"{esc(s['submitter'])}, state <b>{esc(s['state'])}</b></p>"
            + (f"<p>reason: {esc(s['reason'])}</p>" if s["reason"] else "")
            + f"</div><h2>Parties</h2>{parties}"
        )
        return wp.page(app, f"Job {job_id}", body, req)

    def api_jobs(req: wp.Request) -> wp.Response:
        return wp.json_response({"jobs": [job_summary(j) for j in store.list_jobs(limit=100)]})

    def parties(req: wp.Request) -> wp.Response:
        rows = [
            (esc(p.name), esc(p.role), esc(p.address), wp.when(p.last_seen))
            for p in store.list_parties()
        ]
        body = wp.table(
            ("party", "role", "address", "last seen (UTC)"), rows, "no party registered"
        )
        return wp.page(app, "Parties", body, req)

    def datasets(req: wp.Request) -> wp.Response:
        rows = []
        for d in store.list_datasets():
            left = d.policy.remaining_rho
            rows.append(
                (
                    esc(d.party),
                    esc(d.name),
                    esc(", ".join(c.name for c in d.columns)),
                    esc(d.row_count),
                    esc(f"{d.policy.budget_rho:g}"),
                    esc(f"{left:g}") if left >= 0 else "not reported",
                    esc(", ".join(d.policy.exact_protocols) or "none"),
                )
            )
        body = (
            "<p>The budgets are the owners' nodes' mirrors (ρ, zCDP): each node's ledger is "
            "the authority.</p>"
            + wp.table(
                ("party", "dataset", "columns", "rows", "budget ρ", "remaining ρ", "exact"),
                rows,
                "no dataset published",
            )
        )
        return wp.page(app, "Datasets", body, req)

    def audit(req: wp.Request) -> wp.Response:
        status, last = wp.audit_status(store.engine, cfg.tls.cert)
        return wp.page(app, "Audit", status + "<h2>Last records</h2>" + wp.audit_table(last), req)

    app.get.update(
        {
            "/": jobs,
            "/jobs/*": job,
            "/api/jobs": api_jobs,
            "/parties": parties,
            "/datasets": datasets,
            "/audit": audit,
        }
    )
    return app


def _accepts(cfg: CoordinatorConfig, ident: Identity) -> bool:
    return ident.role == "coordinator" and ident.name == cfg.name


def start(cfg: CoordinatorConfig, store: Store) -> Console:
    c = cfg.console
    return serve(
        build(cfg, store),
        c.listen,
        cfg.tls.ca,
        c.cert or cfg.tls.cert,
        c.key or cfg.tls.key,
        "coordinator console",
    )
