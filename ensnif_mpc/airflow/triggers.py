"""The trigger a deferred Ensnif task waits on, in the triggerer's asyncio loop.

The SDK is synchronous (gRPC's blocking stubs), so each poll — one ``GetJob`` over mTLS —
runs in a worker thread (``asyncio.to_thread``) and the loop only sleeps between polls:
the triggerer's event loop is never blocked. The trigger fires once, when the job is in a
final state (or when polling fails), with the job's summary as the event's payload.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ensnif_mpc.airflow._compat import BaseTrigger, TriggerEvent
from ensnif_mpc.airflow.hook import DEFAULT_CONN_ID, EnsnifHook
from ensnif_mpc.airflow.results import job_summary
from ensnif_mpc.errors import EnsnifError, Unavailable
from ensnif_mpc.jobs.jobstate import JobState

CLASSPATH = "ensnif_mpc.airflow.triggers.EnsnifJobTrigger"
# Polls in a row the coordinator may be unreachable before the trigger gives up.
MAX_UNREACHABLE = 5


class EnsnifJobTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires when Ensnif job ``job_id`` has ended (succeeded, failed, cancelled, rejected)."""

    def __init__(
        self,
        job_id: str,
        ensnif_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.ensnif_conn_id = ensnif_conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "job_id": self.job_id,
            "ensnif_conn_id": self.ensnif_conn_id,
            "poll_interval": self.poll_interval,
        }

    def _poll(self) -> dict[str, Any]:
        with EnsnifHook(self.ensnif_conn_id).client() as c:
            return job_summary(c.job(self.job_id))

    async def run(self) -> AsyncIterator[Any]:
        unreachable = 0
        while True:
            try:
                summary = await asyncio.to_thread(self._poll)
            except Unavailable as exc:  # a restart of the coordinator: try again
                unreachable += 1
                if unreachable < MAX_UNREACHABLE:
                    self.log.warning("Ensnif coordinator unreachable (%s); retrying", exc)
                    await asyncio.sleep(self.poll_interval)
                    continue
                yield TriggerEvent(_error(self.job_id, exc))
                return
            except EnsnifError as exc:
                yield TriggerEvent(_error(self.job_id, exc))
                return
            unreachable = 0
            if JobState(summary["state"]).final:
                yield TriggerEvent(summary)
                return
            self.log.info("Ensnif job %s is %s", self.job_id, summary["state"])
            await asyncio.sleep(self.poll_interval)


def _error(job_id: str, exc: EnsnifError) -> dict[str, Any]:
    return {"job_id": job_id, "state": "error", "reason": str(exc), "reason_code": exc.reason}
