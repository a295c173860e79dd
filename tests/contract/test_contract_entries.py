"""Every registry entry declares what the contract suite needs to test it.

A protocol without examples, a reference, leakage text or an entry in
docs/protocols.md fails here: the suite runs over ``registry.catalog()``, so a new entry
is held to it without anyone adding it to a list.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from protocols.registry import catalog

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocols.md"
PROTOCOLS = sorted(catalog())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_entry_declares_a_reference_and_examples_with_valid_parameters(protocol):
    definition = catalog()[protocol]

    assert callable(definition.reference), f"{protocol}: no plaintext reference"
    assert definition.examples, f"{protocol}: no examples (ProtocolDef.examples)"
    for example in definition.examples:
        assert definition.min_data_owners <= example.owners
        assert definition.max_data_owners is None or example.owners <= definition.max_data_owners
        assert definition.check_params(dict(example.params)) is not None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_entry_states_its_leakage_and_is_documented(protocol):
    definition = catalog()[protocol]

    assert len(definition.leakage.split()) >= 8, f"{protocol}: leakage text missing or too short"
    assert re.search(rf"`{re.escape(protocol)}`", DOCS.read_text()), (
        f"{protocol}: no entry in docs/protocols.md"
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_program_opens_nothing_itself(protocol):
    """Outputs are opened only through the runtime: a program never calls mpc.output or
    prints (the worker re-randomizes and seals what the program returns)."""
    module_name, func = catalog()[protocol].program.split(":")
    module = __import__(module_name, fromlist=[func])  # protocol modules import MPyC lazily
    source = inspect.getsource(module)

    assert hasattr(module, func), f"{protocol}: program {func!r} not found"
    assert not re.search(r"\bmpc\.output\(|\.reveal\(|\bprint\(", source), protocol


def test_every_protocol_is_in_exactly_one_mpc_shard():
    from tests.contract import mpc_run

    shards = [mpc_run.shard(i) for i in range(mpc_run.SHARDS)]
    flat = [p for s in shards for p in s]
    assert sorted(flat) == PROTOCOLS
    assert len(flat) == len(set(flat))
    modules = sorted(p.name for p in Path(__file__).parent.glob("test_contract_mpc_*.py"))
    assert modules == [f"test_contract_mpc_{i}.py" for i in range(mpc_run.SHARDS)]
