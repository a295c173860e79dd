"""The analyst SDK (above every service: nothing in the core, the coordinator or a node imports
it).

    from ensnif_mpc.config import ClientProfile
    from ensnif_mpc.sdk import Client, dataset_input, job_spec

Start with docs/analyst-guide.md.
"""

from ensnif_mpc.sdk.client import Client as Client, state_name as state_name
from ensnif_mpc.sdk.intervals import Interval as Interval
from ensnif_mpc.sdk.jobs import dataset_input as dataset_input, job_spec as job_spec
from ensnif_mpc.sdk.result import Result as Result
