"""Member programs: the package and its pin, the manifest against the code, the job spec."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import ColumnTypeMismatch, InvalidJobSpec, ProgramInvalid
from ensnif_mpc.jobs import checks, jobspec, member_program, program_lint
from ensnif_mpc.jobs.member_program import Bundle

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "programs" / "big_baskets"
ENTRY = "big_baskets.py"


@pytest.fixture
def program_dir(tmp_path: Path) -> Path:
    target = tmp_path / "big_baskets"
    shutil.copytree(EXAMPLE, target)
    return target


def _edit(directory: Path, name: str, old: str, new: str) -> None:
    path = directory / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _refusal(directory: Path) -> str:
    with pytest.raises(ProgramInvalid) as info:
        program_lint.check(Bundle.from_path(directory))
    return info.value.message


def test_the_hash_covers_every_byte_of_code_and_manifest(program_dir: Path) -> None:
    first = Bundle.from_path(program_dir).digest
    assert first == Bundle.from_path(program_dir).digest  # deterministic
    _edit(program_dir, ENTRY, "sint = p.sint()", "sint = p.sint() ")
    changed_code = Bundle.from_path(program_dir).digest
    _edit(program_dir, "program.toml", "default = 50", "default = 51")
    changed_manifest = Bundle.from_path(program_dir).digest
    assert len({first, changed_code, changed_manifest}) == 3
    assert first.startswith("sha256:") and len(first) == 7 + 64


def test_renaming_a_file_changes_the_hash_even_with_the_same_bytes() -> None:
    a = member_program.content_hash([("a.py", b"x"), ("program.toml", b"y")])
    b = member_program.content_hash([("b.py", b"x"), ("program.toml", b"y")])
    assert a != b


def test_files_that_do_not_hash_to_the_claimed_hash_are_refused(program_dir: Path) -> None:
    wire = Bundle.from_path(program_dir).to_wire()
    assert Bundle.from_wire(wire).digest == wire["hash"]
    tampered = dict(wire, hash="sha256:" + "0" * 64)
    with pytest.raises(InvalidJobSpec) as info:
        Bundle.from_wire(tampered)
    assert info.value.reason == "program_hash_mismatch"


def test_the_example_passes_the_static_check(program_dir: Path) -> None:
    manifest = program_lint.check(Bundle.from_path(program_dir))
    assert manifest.output_names == ("count_above", "sum_above")
    assert [b.l2 for b in manifest.blocks] == ["rows", "rows * value"]


@pytest.mark.parametrize(
    ("name", "old", "new", "says"),
    [
        (ENTRY, '"sum_above", total', '"sum_beyond", total', "'sum_beyond', which program.toml"),
        ("program.toml", 'name = "sum_above"', 'name = "sum_abov"', "cover every declared"),
        (ENTRY, "sint = p.sint()", "import os\n    sint = p.sint()", "import of 'os'"),
        (ENTRY, "sint = p.sint()", "sint = p.mpc._reshare", "private attribute"),
        (ENTRY, "sint = p.sint()", "sint = getattr(p, 'sint')()", "getattr is not available"),
        (ENTRY, 'p.public("threshold", 50)', 'p.public("limit", 50)', "parameter 'limit'"),
        (ENTRY, "sint = p.sint()", "p.mpc.parties[1].protocol\n    sint = p.sint()", "MPC links"),
        (ENTRY, "sint = p.sint()", "np.save('/tmp/x', 1)\n    sint = p.sint()", ".save"),
    ],
)
def test_a_manifest_that_does_not_match_the_code_is_refused(
    program_dir: Path, name: str, old: str, new: str, says: str
) -> None:
    _edit(program_dir, name, old, new)
    assert says in _refusal(program_dir)


def test_a_declared_output_the_code_never_reveals_is_refused(program_dir: Path) -> None:
    _edit(
        program_dir,
        "program.toml",
        'outputs = ["count_above"]',
        'outputs = ["count_above", "spare"]',
    )
    _edit(program_dir, "program.toml", "[[outputs]]", '[[outputs]]\nname = "spare"\n\n[[outputs]]')
    assert "declares the output 'spare', which the code never reveals" in _refusal(program_dir)


def test_an_output_name_that_is_not_a_literal_cannot_be_checked(program_dir: Path) -> None:
    _edit(program_dir, ENTRY, '"count_above", count', '"count_" + "above", count')
    assert "string literal" in _refusal(program_dir)


def test_a_missing_entry_function_is_refused(program_dir: Path) -> None:
    _edit(program_dir, "program.toml", "big_baskets.py:big_baskets", "big_baskets.py:other")
    assert "defines no `async def other(p)`" in _refusal(program_dir)


def test_dp_blocks_must_cover_every_output(program_dir: Path) -> None:
    _edit(program_dir, "program.toml", 'outputs = ["sum_above"]', "outputs = []")
    assert "cover every declared output" in _refusal(program_dir)


def test_declared_sensitivities_sum_over_owners(program_dir: Path) -> None:
    bundle = Bundle.from_path(program_dir)
    definition = bundle.manifest.definition(bundle.digest)
    assert definition.dp_sensitivity is not None
    # (rows per person, largest |value| on the grid) per owner
    blocks = definition.dp_sensitivity([(2, 50000), (1, 6000)], {})
    assert [(b.l2, b.dims) for b in blocks] == [(3.0, 1), (106000.0, 1)]


def test_a_role_given_a_column_of_the_wrong_type_is_refused(program_dir: Path) -> None:
    _edit(program_dir, "program.toml", 'value = "numeric"', 'value = "int"')
    bundle = Bundle.from_path(program_dir)
    definition = bundle.manifest.definition(bundle.digest)
    columns = (Column("basket_total", "float", 0, 500, 2),)
    with pytest.raises(ColumnTypeMismatch):
        checks.check_input_columns(definition, 0, {"value": "basket_total"}, columns, "g/orders")


def _job_file(tmp_path: Path, program_dir: Path, pin: str = "") -> Path:
    path = tmp_path / "job.toml"
    path.write_text(
        'protocol = "program"\nhelpers = ["helper"]\n'
        '[[inputs]]\nparty = "grocery"\ndataset = "orders"\ncolumn = "basket_total"\n'
        f'[program]\npath = "{program_dir.name}"\n' + (f'hash = "{pin}"\n' if pin else "")
    )
    return path


def test_a_job_file_packs_its_program_and_the_signature_covers_its_hash(
    tmp_path: Path, program_dir: Path
) -> None:
    digest = Bundle.from_path(program_dir).digest
    spec = jobspec.load(_job_file(tmp_path, program_dir, pin=digest))
    assert spec.program is not None and spec.program.digest == digest
    assert digest.encode() in jobspec.canonical(spec, 1)
    # the wire form (what the coordinator stores and relays) reads back to the same job
    again = jobspec.from_dict({**_as_dict(spec), "program": spec.program.to_wire()})
    assert jobspec.canonical(again, 1) == jobspec.canonical(spec, 1)


def test_a_job_file_pinned_to_another_hash_is_refused(tmp_path: Path, program_dir: Path) -> None:
    with pytest.raises(InvalidJobSpec) as info:
        jobspec.load(_job_file(tmp_path, program_dir, pin="sha256:" + "1" * 64))
    assert info.value.reason == "program_hash_mismatch"


def test_a_program_table_needs_the_program_protocol(tmp_path: Path, program_dir: Path) -> None:
    path = _job_file(tmp_path, program_dir)
    path.write_text(path.read_text().replace('protocol = "program"', 'protocol = "sum"'))
    with pytest.raises(InvalidJobSpec, match="goes with protocol"):
        jobspec.load(path)


def _as_dict(spec: jobspec.JobSpec) -> dict[str, object]:
    return {
        "protocol": spec.protocol,
        "inputs": [i.to_dict() for i in spec.inputs],
        "helpers": list(spec.helpers),
        "params": spec.params,
        "name": spec.name,
    }


def test_a_role_given_the_wrong_number_of_columns_is_refused(program_dir: Path) -> None:
    bundle = Bundle.from_path(program_dir)
    definition = bundle.manifest.definition(bundle.digest)
    columns = (Column("a", "float", 0, 9, 1), Column("b", "float", 0, 9, 1))
    with pytest.raises(InvalidJobSpec) as info:  # `value` takes one column, not a list
        checks.check_input_columns(definition, 0, {"value": ["a", "b"]}, columns, "g/orders")
    assert info.value.reason == "role_column_count"


def test_a_manifest_role_may_take_a_list_of_columns(program_dir: Path) -> None:
    _edit(
        program_dir,
        "program.toml",
        'value = "numeric"',
        'value = "numeric"\nfeatures = { type = "float", columns = [2, 3] }\n'
        'optional = ["features"]',
    )
    bundle = Bundle.from_path(program_dir)
    (value, features) = bundle.manifest.roles[0]
    assert (features.many, features.min_columns, features.max_columns) == (True, 2, 3)
    definition = bundle.manifest.definition(bundle.digest)
    columns = tuple(Column(n, "float", 0, 9, 1) for n in "abcd")
    with pytest.raises(InvalidJobSpec) as info:
        checks.check_input_columns(
            definition, 0, {"value": "a", "features": ["b", "c", "d", "a"]}, columns, "g/o"
        )
    assert info.value.reason == "role_column_count"
