"""The Ensnif provider for Apache Airflow (the optional extra ``ensnif[airflow]``).

    from ensnif_mpc.airflow import EnsnifHook, EnsnifJobSensor, EnsnifSubmitJobOperator

A tool above the SDK, like the CLI: nothing in the core, the services or the SDK imports
it. Airflow finds it through the ``apache_airflow_provider`` entry point
(:func:`get_provider_info`), which registers the ``ensnif`` connection type. Start with
docs/airflow.md.
"""

from __future__ import annotations

from typing import Any

from ensnif_mpc.airflow.hook import CONN_TYPE, EnsnifHook as EnsnifHook
from ensnif_mpc.airflow.operators import EnsnifSubmitJobOperator as EnsnifSubmitJobOperator
from ensnif_mpc.airflow.sensors import EnsnifJobSensor as EnsnifJobSensor
from ensnif_mpc.airflow.triggers import EnsnifJobTrigger as EnsnifJobTrigger


def get_provider_info() -> dict[str, Any]:
    """What Airflow's ProvidersManager reads from the entry point."""
    return {
        "package-name": "ensnif",
        "name": "Ensnif",
        "description": "Submit Ensnif MPC jobs, wait for them and read their DP results.",
        "versions": ["0.1.0"],
        "connection-types": [
            {"connection-type": CONN_TYPE, "hook-class-name": "ensnif_mpc.airflow.EnsnifHook"}
        ],
        "hooks": [{"integration-name": "Ensnif", "python-modules": ["ensnif_mpc.airflow.hook"]}],
        "operators": [
            {"integration-name": "Ensnif", "python-modules": ["ensnif_mpc.airflow.operators"]}
        ],
        "sensors": [
            {"integration-name": "Ensnif", "python-modules": ["ensnif_mpc.airflow.sensors"]}
        ],
        "triggers": [
            {"integration-name": "Ensnif", "python-modules": ["ensnif_mpc.airflow.triggers"]}
        ],
    }
