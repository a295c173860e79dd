"""Airflow's classes the provider builds on, imported in one place.

Airflow is an optional extra (``ensnif[airflow]``, Airflow 3.1 or later: Airflow 2 pins
SQLAlchemy below 2): nothing outside ``ensnif_mpc.airflow`` imports this package, and
importing it without Airflow installed raises ImportError.
"""

from __future__ import annotations

from typing import Any

from airflow.exceptions import AirflowException
from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

# The task context as the provider uses it (the ``ti`` entry only).
Context = dict[str, Any]

__all__ = [
    "AirflowException",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "Context",
    "TriggerEvent",
]
