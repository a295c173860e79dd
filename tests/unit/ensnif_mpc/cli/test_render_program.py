"""`ensnif job status|list --json` show a member program by its hash and file names."""

from __future__ import annotations

import json

from rich.console import Console

from ensnif_mpc.cli.render import job_dict, job_panel
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb

DIGEST = "sha256:" + "c" * 64


def test_a_program_job_shows_its_hash_and_files_not_its_bytes() -> None:
    program = {"hash": DIGEST, "files": {"main.py": "YWJj", "program.toml": "ZGVm"}}
    job = pb.Job(
        id="j1",
        state=pb.JOB_STATE_SUCCEEDED,
        spec=pb.JobSpec(protocol="program", program_json=json.dumps(program)),
    )
    spec = job_dict(job)["spec"]
    assert spec["program"] == {"hash": DIGEST, "files": ["main.py", "program.toml"]}
    assert "program_json" not in spec and "YWJj" not in json.dumps(spec)
    console = Console(record=True, width=200)
    console.print(job_panel(job))
    assert f"{DIGEST} (main.py, program.toml)" in console.export_text()
