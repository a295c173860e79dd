"""A dataset's policy and member programs: only the exact hashes it lists run without a person."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensnif_mpc.config import _policy
from ensnif_mpc.data.schema import AccessPolicy, Column
from ensnif_mpc.errors import InvalidConfig, PolicyViolation
from party_node.policy import Request, evaluate

LISTED = "sha256:" + "a" * 64
OTHER = "sha256:" + "a" * 63 + "b"  # one character off: another program


def _request(program: str) -> Request:
    return Request("orders", "program", {"value": "basket_total"}, "analyst", program=program)


def test_a_listed_program_follows_the_approval_mode() -> None:
    assert not evaluate(("sum",), AccessPolicy(programs=(LISTED,)), _request(LISTED)).manual
    manual = AccessPolicy(programs=(LISTED,), approval="manual")
    assert evaluate(("sum",), manual, _request(LISTED)).manual


def test_an_unlisted_program_always_waits_for_a_person() -> None:
    verdict = evaluate(("sum",), AccessPolicy(programs=(LISTED,)), _request(OTHER))
    assert verdict.manual and OTHER in verdict.rule
    assert evaluate(("sum",), AccessPolicy(), _request(LISTED)).manual


def test_the_other_rules_still_refuse_a_program() -> None:
    policy = AccessPolicy(programs=(LISTED,), columns=("zip",))
    with pytest.raises(PolicyViolation) as info:
        evaluate((), policy, _request(LISTED))
    assert info.value.reason == "column_not_allowed"


def test_the_policy_file_takes_program_hashes_only() -> None:
    columns = [Column("basket_total", "float", 0, 500, 2)]
    assert _policy({"programs": [LISTED]}, "policy", columns).programs == (LISTED,)
    with pytest.raises(InvalidConfig, match="not a program hash"):
        _policy({"programs": ["big_baskets"]}, "policy", columns)


def test_the_console_shows_a_program_verbatim_and_escaped() -> None:
    from party_node.console import _program_files

    html = _program_files({"hash": LISTED, "files": {"main.py": "if a < b: p.reveal('<x>')"}})
    assert LISTED in html and "main.py" in html
    assert "if a &lt; b" in html and "&lt;x&gt;" in html and "<x>" not in html
    assert _program_files({}) == ""


def test_a_helper_lists_the_programs_it_runs_in_its_party_toml(tmp_path: Path) -> None:
    from ensnif_mpc.config import PartyConfig

    for name in ("ca.crt", "helper.crt", "helper.key"):
        (tmp_path / name).write_text("")  # only their presence is checked when loading
    path = tmp_path / "party.toml"
    path.write_text(
        f'name = "helper"\nprograms = ["{LISTED}"]\n'
        '[tls]\nca = "ca.crt"\ncert = "helper.crt"\nkey = "helper.key"\n'
    )
    assert PartyConfig.load(path).programs == (LISTED,)
    path.write_text(path.read_text().replace(LISTED, "sha256:nope"))
    with pytest.raises(InvalidConfig, match="not a program hash"):
        PartyConfig.load(path)
