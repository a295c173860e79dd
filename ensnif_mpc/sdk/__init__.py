"""The analyst SDK (above every service: nothing in the core, the coordinator or a node imports
it).

    from ensnif_mpc.config import ClientProfile
    from ensnif_mpc.sdk import Client, dataset_input, job_spec

A member without a node (its dataset encrypted at a helper, docs/homomorphic.md):

    from ensnif_mpc.sdk import outsource      # keygen, encrypt, verify, Helper (upload, list,
                                              # serve); also OutsourceHelper here

Start with docs/analyst-guide.md.
"""

from typing import Any

from ensnif_mpc.sdk.client import Client as Client, state_name as state_name
from ensnif_mpc.sdk.intervals import Interval as Interval
from ensnif_mpc.sdk.jobs import dataset_input as dataset_input, job_spec as job_spec
from ensnif_mpc.sdk.result import Result as Result


def __getattr__(name: str) -> Any:
    """``OutsourceHelper`` on first use: it imports TenSEAL, which an analyst's client that
    only submits jobs never needs to load."""
    if name == "OutsourceHelper":
        from ensnif_mpc.sdk.outsource import Helper

        return Helper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
