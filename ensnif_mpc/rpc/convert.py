"""Conversions between domain dataclasses and the ``ensnif.v1`` protobuf messages."""

from __future__ import annotations

import json

from ensnif_mpc.data.schema import Column, DatasetSchema, PrivacyPolicy
from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb
from ensnif_mpc.jobs import member_program
from ensnif_mpc.jobs.jobspec import Input, JobSpec
from ensnif_mpc.jobs.jobstate import JobState

_COLTYPE = {
    "int": pb.COLUMN_TYPE_INT,
    "float": pb.COLUMN_TYPE_FLOAT,
    "string": pb.COLUMN_TYPE_STRING,
}
_COLTYPE_BACK = {v: k for k, v in _COLTYPE.items()}


def state_to_pb(state: JobState) -> pb.JobState.ValueType:
    return pb.JobState.Value(f"JOB_STATE_{state.name}")


def state_from_pb(value: pb.JobState.ValueType) -> JobState:
    name = pb.JobState.Name(value).removeprefix("JOB_STATE_")
    return JobState[name]


def spec_to_pb(spec: JobSpec) -> pb.JobSpec:
    return pb.JobSpec(
        protocol=spec.protocol,
        inputs=[
            pb.JobInput(
                party=i.party,
                dataset=i.dataset,
                column=i.column,
                roles=dict(i.roles),
                column_lists={r: pb.ColumnList(columns=list(c)) for r, c in i.lists},
            )
            for i in spec.inputs
        ],
        helpers=list(spec.helpers),
        params_json=spec.params_json(),
        name=spec.name,
        privacy_json=spec.privacy_json(),
        nonce=spec.nonce,
        signature=spec.signature,
        program_json=member_program.wire_json(spec.program),
        artifacts=list(spec.artifacts),
    )


def spec_from_pb(msg: pb.JobSpec) -> JobSpec:
    try:
        params = json.loads(msg.params_json) if msg.params_json else {}
    except ValueError as exc:
        raise InvalidJobSpec(f"params: not valid JSON ({exc})") from exc
    except RecursionError:
        raise InvalidJobSpec("params: nested too deeply") from None
    if not isinstance(params, dict):
        raise InvalidJobSpec("params: expected an object")
    try:
        privacy = json.loads(msg.privacy_json) if msg.privacy_json else None
    except ValueError as exc:
        raise InvalidJobSpec(f"privacy: not valid JSON ({exc})") from exc
    except RecursionError:
        raise InvalidJobSpec("privacy: nested too deeply") from None
    from ensnif_mpc.jobs import jobspec  # shape checks shared with the TOML path

    try:
        program = json.loads(msg.program_json) if msg.program_json else None
    except (ValueError, RecursionError):
        raise InvalidJobSpec("program: not valid JSON") from None

    return jobspec.from_dict(
        {
            "protocol": msg.protocol,
            "inputs": [
                Input(
                    i.party,
                    i.dataset,
                    i.column,
                    tuple(sorted(i.roles.items())),
                    tuple(sorted((r, tuple(c.columns)) for r, c in i.column_lists.items())),
                ).to_dict()
                for i in msg.inputs
            ],
            "helpers": list(msg.helpers),
            "params": params,
            "name": msg.name,
            "privacy": privacy,
            "nonce": msg.nonce,
            "signature": msg.signature.hex(),
            **({"program": program} if program is not None else {}),
            **({"artifacts": list(msg.artifacts)} if msg.artifacts else {}),
        }
    )


def column_to_pb(c: Column) -> pb.Column:
    return pb.Column(
        name=c.name, type=_COLTYPE[c.type], lower=c.lower, upper=c.upper, decimals=c.decimals
    )


def column_from_pb(m: pb.Column) -> Column:
    return Column(
        name=m.name,
        type=_COLTYPE_BACK.get(m.type, "string"),
        lower=m.lower,
        upper=m.upper,
        decimals=m.decimals,
    )


def dataset_to_pb(d: DatasetSchema) -> pb.Dataset:
    return pb.Dataset(
        party=d.party,
        name=d.name,
        columns=[column_to_pb(c) for c in d.columns],
        row_count=d.row_count,
        description=d.description,
        policy=pb.PrivacyPolicy(
            budget_rho=d.policy.budget_rho,
            default_rho=d.policy.default_rho,
            max_rho=d.policy.max_rho,
            exact_protocols=list(d.policy.exact_protocols),
            rows_per_person=d.policy.rows_per_person,
            remaining_rho=d.policy.remaining_rho,
        ),
        host=d.host,
        outsourced_sha256=d.outsourced_sha256,
    )


def dataset_from_pb(m: pb.Dataset) -> DatasetSchema:
    return DatasetSchema(
        party=m.party,
        name=m.name,
        columns=tuple(column_from_pb(c) for c in m.columns),
        row_count=m.row_count,
        description=m.description,
        policy=_policy_from_pb(m.policy) if m.HasField("policy") else PrivacyPolicy(),
        host=m.host,
        outsourced_sha256=m.outsourced_sha256,
    )


def _policy_from_pb(m: pb.PrivacyPolicy) -> PrivacyPolicy:
    return PrivacyPolicy(
        budget_rho=m.budget_rho,
        default_rho=m.default_rho,
        max_rho=m.max_rho,
        exact_protocols=tuple(m.exact_protocols),
        rows_per_person=max(1, m.rows_per_person),
        remaining_rho=m.remaining_rho,
    )


__all__ = [
    "Input",
    "spec_to_pb",
    "spec_from_pb",
    "state_to_pb",
    "state_from_pb",
    "dataset_to_pb",
    "dataset_from_pb",
    "column_to_pb",
    "column_from_pb",
]
