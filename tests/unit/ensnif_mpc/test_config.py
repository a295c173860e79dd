"""TOML configuration: path resolution, validation, and flag > env > file precedence."""

from __future__ import annotations

import math
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ensnif_mpc.config import ClientProfile, CoordinatorConfig, PartyConfig
from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import SourceSpec
from ensnif_mpc.errors import InvalidConfig

TLS = """
[tls]
ca = "pki/ca.crt"
cert = "pki/{name}.crt"
key = "pki/{name}.key"
"""

PARTY = """
name = "grocery"
listen = "127.0.0.1:50061"
coordinator = "coord.example:50051"
mpc_ports = "41000-41099"

[[datasets]]
name = "orders"
path = "data/orders.csv"
description = "basket totals"
allowed_protocols = ["sum"]

[[datasets.columns]]
name = "basket_total"
type = "float"
lower = 0
upper = 500
decimals = 2
""" + TLS.format(name="grocery")

COORDINATOR = """
name = "coordinator"
listen = "0.0.0.0:50051"
database = "sqlite:///db/coordinator.db"

[timeouts]
propose_seconds = 5
job_seconds = 60
""" + TLS.format(name="coordinator")

PROFILE = """
coordinator = "coord.example:50051"
coordinator_name = "coordinator"
""" + TLS.format(name="alice")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("ENSNIF_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ENSNIF_PROFILE", str(tmp_path / "no-such-profile.toml"))


@pytest.fixture
def conf_dir(tmp_path, consortium):
    """A directory with pki/ (copied from the session's consortium) next to the config files."""
    shutil.copytree(consortium.directory, tmp_path / "pki")
    return tmp_path


def _write(directory, name, text):
    path = directory / name
    path.write_text(text)
    return path


# -- PartyConfig -------------------------------------------------------------


def test_party_config_resolves_relative_paths_against_the_files_dir(conf_dir):
    cfg = PartyConfig.load(_write(conf_dir, "party.toml", PARTY))

    assert cfg.tls.ca == conf_dir / "pki" / "ca.crt"
    assert cfg.tls.cert == conf_dir / "pki" / "grocery.crt"
    assert cfg.tls.key == conf_dir / "pki" / "grocery.key"
    assert cfg.datasets[0].path == conf_dir / "data" / "orders.csv"
    assert cfg.state_dir == conf_dir / "state" / "grocery"


def test_party_config_reads_datasets_and_columns(conf_dir):
    cfg = PartyConfig.load(_write(conf_dir, "party.toml", PARTY))

    (ds,) = cfg.datasets
    assert ds.name == "orders"
    assert ds.columns == (Column("basket_total", "float", 0.0, 500.0, 2),)
    assert ds.allowed_protocols == ("sum",)
    assert cfg.role == "data_owner"


def test_party_config_without_datasets_is_a_compute_node(conf_dir):
    text = 'name = "helper"\n' + TLS.format(name="helper")

    cfg = PartyConfig.load(_write(conf_dir, "party.toml", text))

    assert cfg.role == "compute"
    assert cfg.mpc_ports == (41000, 41999)


def test_party_config_is_independent_of_the_working_directory(
    conf_dir, tmp_path_factory, monkeypatch
):
    path = _write(conf_dir, "party.toml", PARTY)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))

    cfg = PartyConfig.load(path)

    assert cfg.tls.ca == conf_dir / "pki" / "ca.crt"


def test_party_config_without_tls_table_is_refused(conf_dir):
    text = PARTY.split("[tls]")[0]

    with pytest.raises(InvalidConfig, match=r"tls: missing \[tls\] table"):
        PartyConfig.load(_write(conf_dir, "party.toml", text))


def test_party_config_with_missing_cert_file_names_the_path(conf_dir):
    (conf_dir / "pki" / "grocery.crt").unlink()

    with pytest.raises(InvalidConfig) as info:
        PartyConfig.load(_write(conf_dir, "party.toml", PARTY))

    assert str(conf_dir / "pki" / "grocery.crt") in info.value.message
    assert "does not exist" in info.value.message


def test_party_config_with_empty_tls_path_is_refused(conf_dir):
    text = PARTY.replace('key = "pki/grocery.key"', 'key = ""')

    with pytest.raises(InvalidConfig, match="tls.key: expected a path"):
        PartyConfig.load(_write(conf_dir, "party.toml", text))


def test_party_config_without_name_is_refused(conf_dir):
    text = PARTY.replace('name = "grocery"\n', "", 1)

    with pytest.raises(InvalidConfig, match="`name` is required"):
        PartyConfig.load(_write(conf_dir, "party.toml", text))


@pytest.mark.parametrize(
    "ports", ["41000", "a-b", "41000-41001-41002", "80-90", "42000-41000", "41000-70000"]
)
def test_party_config_refuses_a_bad_mpc_port_range(conf_dir, ports):
    text = PARTY.replace('"41000-41099"', f'"{ports}"')

    with pytest.raises(InvalidConfig, match="mpc_ports"):
        PartyConfig.load(_write(conf_dir, "party.toml", text))


def test_party_config_accepts_a_single_port_range(conf_dir):
    text = PARTY.replace('"41000-41099"', '"41000-41000"')

    assert PartyConfig.load(_write(conf_dir, "party.toml", text)).mpc_ports == (41000, 41000)


def test_party_config_dataset_without_columns_is_refused(conf_dir):
    text = PARTY.split("[[datasets.columns]]")[0] + TLS.format(name="grocery")

    with pytest.raises(InvalidConfig, match=r"datasets\[0\]: declare at least one"):
        PartyConfig.load(_write(conf_dir, "party.toml", text))


def test_party_config_dataset_without_path_or_url_is_refused(conf_dir):
    text = PARTY.replace('path = "data/orders.csv"\n', "")

    with pytest.raises(InvalidConfig, match=r"datasets\[0\]: needs a path .* or a url"):
        PartyConfig.load(_write(conf_dir, "party.toml", text))


def _dataset_source(conf_dir, lines):
    """PartyConfig.load of PARTY with the dataset's `path = ...` line replaced by ``lines``."""
    text = PARTY.replace('path = "data/orders.csv"\n', lines)
    return PartyConfig.load(_write(conf_dir, "party.toml", text)).datasets[0]


def test_dataset_csv_path_gives_a_csv_source_with_defaults(conf_dir):
    ds = _dataset_source(conf_dir, 'path = "data/orders.csv"\n')

    assert ds.source == SourceSpec("csv", path=str(conf_dir / "data" / "orders.csv"))
    assert ds.clamp is False


@pytest.mark.parametrize("suffix", ["parquet", "pq", "PARQUET"])
def test_dataset_parquet_kind_is_inferred_from_the_suffix(conf_dir, suffix):
    ds = _dataset_source(conf_dir, f'path = "data/orders.{suffix}"\n')

    assert ds.source.kind == "parquet"


def test_dataset_explicit_format_wins_over_the_suffix(conf_dir):
    ds = _dataset_source(conf_dir, 'path = "data/orders.txt"\nformat = "csv"\n')

    assert (ds.source.kind, ds.path) == ("csv", conf_dir / "data" / "orders.txt")


def test_dataset_with_an_unknown_suffix_is_refused(conf_dir):
    with pytest.raises(InvalidConfig, match=r"unknown suffix '.xlsx'; set format"):
        _dataset_source(conf_dir, 'path = "data/orders.xlsx"\n')


def test_dataset_with_an_unknown_format_is_refused(conf_dir):
    with pytest.raises(InvalidConfig, match="unknown format 'excel'"):
        _dataset_source(conf_dir, 'path = "data/orders.csv"\nformat = "excel"\n')


def test_dataset_sql_url_with_a_query(conf_dir):
    ds = _dataset_source(
        conf_dir,
        'url = "postgresql://owner@db.example/shop"\nquery = "SELECT * FROM orders"\n'
        "timeout_seconds = 5\nclamp = true\n",
    )

    assert ds.source == SourceSpec(
        "sql", url="postgresql://owner@db.example/shop", query="SELECT * FROM orders", timeout_s=5
    )
    assert ds.clamp is True


def test_dataset_relative_sqlite_url_resolves_against_the_files_dir(conf_dir):
    ds = _dataset_source(conf_dir, 'url = "sqlite:///data/shop.db"\ntable = "orders"\n')

    assert ds.source.url == f"sqlite:///{conf_dir / 'data' / 'shop.db'}"
    assert ds.source.table == "orders"


def test_dataset_absolute_sqlite_url_is_kept(conf_dir):
    ds = _dataset_source(conf_dir, 'url = "sqlite:////srv/shop.db"\ntable = "orders"\n')

    assert ds.source.url == "sqlite:////srv/shop.db"


def test_dataset_url_expands_environment_variables(conf_dir, monkeypatch):
    monkeypatch.setenv("SHOP_DB_PASSWORD", "s3cret")

    ds = _dataset_source(
        conf_dir, 'url = "postgresql://owner:${SHOP_DB_PASSWORD}@db/shop"\ntable = "orders"\n'
    )

    # Kept unexpanded: the secret must not reach job records or worker sessions; the
    # process that connects expands it (see test_sources).
    assert ds.source.url == "postgresql://owner:${SHOP_DB_PASSWORD}@db/shop"
    assert "s3cret" not in ds.source.describe()


def test_a_sql_dataset_has_no_path(conf_dir):
    ds = _dataset_source(conf_dir, 'url = "sqlite:///shop.db"\ntable = "orders"\n')

    with pytest.raises(InvalidConfig, match="no path"):
        _ = ds.path


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        ('path = "data/orders.csv"\nurl = "sqlite:///x.db"\n', "either path .* or url"),
        ('url = "sqlite:///x.db"\n', "exactly one of query .* or table"),
        ('url = "sqlite:///x.db"\nquery = "SELECT 1"\ntable = "t"\n', "exactly one of"),
        ('url = "sqlite:///x.db"\nquery = "  "\n', "exactly one of"),
        ('url = "sqlite:///x.db"\ntable = "t"\nformat = "csv"\n', "format: only a path"),
        ('path = "data/orders.csv"\ntable = "t"\n', "table: only a url"),
        ('url = "::nonsense"\ntable = "t"\n', "url: not a database URL"),
        ('url = ""\ntable = "t"\n', "url: expected a database URL"),
        ('path = "data/orders.csv"\nclamp = "yes"\n', "clamp: expected true or false"),
        ('path = "data/orders.csv"\ntimeout_seconds = 0\n', "timeout_seconds: expected"),
    ],
)
def test_dataset_source_mistakes_are_refused(conf_dir, lines, match):
    with pytest.raises(InvalidConfig, match=match):
        _dataset_source(conf_dir, lines)


def test_party_config_column_with_lower_above_upper_is_refused(conf_dir):
    text = PARTY.replace("lower = 0", "lower = 900")

    with pytest.raises(InvalidConfig, match="'basket_total': lower"):
        PartyConfig.load(_write(conf_dir, "party.toml", text))


def test_party_config_column_with_non_numeric_bound_is_refused(conf_dir):
    text = PARTY.replace("upper = 500", 'upper = "lots"')

    with pytest.raises(InvalidConfig, match="upper"):
        PartyConfig.load(_write(conf_dir, "party.toml", text))


def test_party_config_malformed_toml_names_the_file(conf_dir):
    path = _write(conf_dir, "party.toml", 'name = "grocery\n')

    with pytest.raises(InvalidConfig, match="not valid TOML") as info:
        PartyConfig.load(path)

    assert str(path) in info.value.message


def test_party_config_missing_file_is_refused(conf_dir):
    with pytest.raises(InvalidConfig, match="cannot read"):
        PartyConfig.load(conf_dir / "absent.toml")


def test_env_coordinator_wins_over_the_file(conf_dir, monkeypatch):
    monkeypatch.setenv("ENSNIF_COORDINATOR", "env.example:6000")

    cfg = PartyConfig.load(_write(conf_dir, "party.toml", PARTY))

    assert cfg.coordinator == "env.example:6000"


def test_env_listen_wins_over_the_file(conf_dir, monkeypatch):
    monkeypatch.setenv("ENSNIF_LISTEN", "127.0.0.1:7000")

    cfg = PartyConfig.load(_write(conf_dir, "party.toml", PARTY))

    assert cfg.listen == "127.0.0.1:7000"


def test_flag_override_wins_over_the_file(conf_dir):
    cfg = PartyConfig.load(_write(conf_dir, "party.toml", PARTY), {"listen": "127.0.0.1:7001"})

    assert cfg.listen == "127.0.0.1:7001"


def test_flag_override_of_none_keeps_the_file_value(conf_dir):
    cfg = PartyConfig.load(_write(conf_dir, "party.toml", PARTY), {"listen": None})

    assert cfg.listen == "127.0.0.1:50061"


def test_flag_override_wins_over_the_environment(conf_dir, monkeypatch):
    monkeypatch.setenv("ENSNIF_LISTEN", "127.0.0.1:7000")

    cfg = PartyConfig.load(_write(conf_dir, "party.toml", PARTY), {"listen": "127.0.0.1:7001"})

    assert cfg.listen == "127.0.0.1:7001"


# -- CoordinatorConfig -------------------------------------------------------


def test_coordinator_config_resolves_a_relative_sqlite_url(conf_dir):
    cfg = CoordinatorConfig.load(_write(conf_dir, "coordinator.toml", COORDINATOR))

    assert cfg.database == f"sqlite:///{conf_dir / 'db' / 'coordinator.db'}"


def test_coordinator_config_keeps_an_absolute_sqlite_url(conf_dir):
    text = COORDINATOR.replace("sqlite:///db/coordinator.db", "sqlite:////var/lib/c.db")

    cfg = CoordinatorConfig.load(_write(conf_dir, "coordinator.toml", text))

    assert cfg.database == "sqlite:////var/lib/c.db"


def test_coordinator_config_keeps_a_postgres_url(conf_dir):
    text = COORDINATOR.replace("sqlite:///db/coordinator.db", "postgresql://u@db/ensnif")

    cfg = CoordinatorConfig.load(_write(conf_dir, "coordinator.toml", text))

    assert cfg.database == "postgresql://u@db/ensnif"


def test_coordinator_config_env_database_wins_over_the_file(conf_dir, monkeypatch):
    monkeypatch.setenv("ENSNIF_DATABASE", "postgresql://u@env/ensnif")

    cfg = CoordinatorConfig.load(_write(conf_dir, "coordinator.toml", COORDINATOR))

    assert cfg.database == "postgresql://u@env/ensnif"


def test_coordinator_config_reads_timeouts_and_tls(conf_dir):
    cfg = CoordinatorConfig.load(_write(conf_dir, "coordinator.toml", COORDINATOR))

    assert (cfg.propose_timeout_s, cfg.job_timeout_s) == (5.0, 60.0)
    assert cfg.tls.cert == conf_dir / "pki" / "coordinator.crt"
    assert cfg.listen == "0.0.0.0:50051"


def test_coordinator_config_without_tls_is_refused(conf_dir):
    text = COORDINATOR.split("[tls]")[0]

    with pytest.raises(InvalidConfig, match=r"missing \[tls\]"):
        CoordinatorConfig.load(_write(conf_dir, "coordinator.toml", text))


# -- ClientProfile -----------------------------------------------------------


def test_client_profile_loads_from_an_explicit_path(conf_dir):
    path = _write(conf_dir, "profile.toml", PROFILE)

    profile = ClientProfile.load(path)

    assert profile.coordinator == "coord.example:50051"
    assert profile.tls.key == conf_dir / "pki" / "alice.key"
    assert profile.source == str(path)


def test_client_profile_is_found_through_ensnif_profile(conf_dir, monkeypatch):
    path = _write(conf_dir, "profile.toml", PROFILE)
    monkeypatch.setenv("ENSNIF_PROFILE", str(path))

    assert ClientProfile.load().source == str(path)


def test_client_profile_env_coordinator_wins_over_the_file(conf_dir, monkeypatch):
    monkeypatch.setenv("ENSNIF_COORDINATOR", "env.example:6000")

    profile = ClientProfile.load(_write(conf_dir, "profile.toml", PROFILE))

    assert profile.coordinator == "env.example:6000"


def test_client_profile_env_cert_wins_over_the_file(conf_dir, monkeypatch):
    monkeypatch.setenv("ENSNIF_CERT", str(conf_dir / "pki" / "bob.crt"))
    monkeypatch.setenv("ENSNIF_KEY", str(conf_dir / "pki" / "bob.key"))

    profile = ClientProfile.load(_write(conf_dir, "profile.toml", PROFILE))

    assert profile.tls.cert == conf_dir / "pki" / "bob.crt"
    assert profile.tls.key == conf_dir / "pki" / "bob.key"


def test_client_profile_from_environment_only(conf_dir, monkeypatch):
    for key, name in (("CA", "ca.crt"), ("CERT", "bob.crt"), ("KEY", "bob.key")):
        monkeypatch.setenv(f"ENSNIF_{key}", str(conf_dir / "pki" / name))

    profile = ClientProfile.load()

    assert profile.tls.cert == conf_dir / "pki" / "bob.crt"
    assert profile.coordinator == "127.0.0.1:50051"


def test_client_profile_missing_everywhere_is_refused(tmp_path):
    with pytest.raises(InvalidConfig, match="no client profile at"):
        ClientProfile.load()


def test_client_profile_with_missing_key_names_the_path(conf_dir):
    (conf_dir / "pki" / "alice.key").unlink()

    with pytest.raises(InvalidConfig) as info:
        ClientProfile.load(_write(conf_dir, "profile.toml", PROFILE))

    assert str(conf_dir / "pki" / "alice.key") in info.value.message


# -- Column ------------------------------------------------------------------


def test_column_with_lower_above_upper_is_refused():
    with pytest.raises(InvalidConfig, match="lower .* exceeds upper"):
        Column("x", "float", lower=10, upper=1)


@pytest.mark.parametrize(
    ("lower", "upper"), [(0, math.inf), (-math.inf, 0), (math.nan, 1), (0, math.nan)]
)
def test_column_with_non_finite_bounds_is_refused(lower, upper):
    with pytest.raises(InvalidConfig, match="finite"):
        Column("x", "float", lower=lower, upper=upper)


def test_int_column_with_decimals_is_refused():
    with pytest.raises(InvalidConfig, match="int columns have no decimals"):
        Column("x", "int", lower=0, upper=10, decimals=2)


@pytest.mark.parametrize("decimals", [-1, 7])
def test_column_decimals_out_of_range_are_refused(decimals):
    with pytest.raises(InvalidConfig, match="decimals must be between 0 and 6"):
        Column("x", "float", lower=0, upper=10, decimals=decimals)


def test_column_with_unknown_type_is_refused():
    with pytest.raises(InvalidConfig, match="type must be one of"):
        Column("x", "decimal", lower=0, upper=10)


def test_string_column_needs_no_bounds():
    col = Column("store", "string", lower=math.nan, upper=math.nan)

    assert not col.numeric


def test_column_abs_bound_is_the_larger_magnitude():
    assert Column("x", "float", lower=-30, upper=20).abs_bound == 30


POLICY = """
[datasets.policy]
columns = ["basket_total"]
recipients = ["analyst"]
min_cohort = 10
max_repeats = 3
repeat_period_seconds = 3600
approval = "manual"
"""


def _with_policy(policy: str) -> str:
    head, tail = PARTY.split("[[datasets.columns]]", 1)
    return head + policy + "\n[[datasets.columns]]" + tail


def test_party_config_reads_a_dataset_policy(conf_dir):
    cfg = PartyConfig.load(_write(conf_dir, "party.toml", _with_policy(POLICY)))
    p = cfg.datasets[0].policy
    assert p.columns == ("basket_total",) and p.recipients == ("analyst",)
    assert (p.min_cohort, p.max_repeats, p.repeat_period_s) == (10, 3, 3600.0)
    assert p.approval == "manual"


def test_party_config_without_a_policy_restricts_nothing_more(conf_dir):
    p = PartyConfig.load(_write(conf_dir, "party.toml", PARTY)).datasets[0].policy
    assert (p.columns, p.recipients, p.min_cohort, p.max_repeats, p.approval) == (
        (),
        (),
        0,
        0,
        "auto",
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (('approval = "manual"', 'approval = "maybe"'), "datasets\\[0\\].policy: .*approval"),
        (("min_cohort = 10", "min_cohort = 2.5"), "min_cohort: expected a whole number"),
        (("min_cohort = 10", "min_cohort = -1"), "must not be negative"),
        (('columns = ["basket_total"]', 'columns = ["zip"]'), "'zip' is not a declared column"),
        (('recipients = ["analyst"]', 'recipients = "analyst"'), "recipients: expected a list"),
        (("max_repeats = 3", "max_repeat = 3"), "policy.max_repeat: unknown key"),
        (("repeat_period_seconds = 3600", "repeat_period_seconds = 0"), "repeat_period"),
    ],
)
def test_party_config_refuses_a_bad_policy_naming_the_key(conf_dir, change, message):
    text = _with_policy(POLICY.replace(*change))
    with pytest.raises(InvalidConfig, match=message):
        PartyConfig.load(_write(conf_dir, "party.toml", text))


def test_party_config_person_column_must_be_declared(conf_dir):
    head, tail = PARTY.split("[[datasets.columns]]", 1)
    good = (
        head + '[datasets.privacy]\nperson_column = "basket_total"\n\n[[datasets.columns]]' + tail
    )
    cfg = PartyConfig.load(_write(conf_dir, "party.toml", good))
    assert cfg.datasets[0].privacy.person_column == "basket_total"
    bad = good.replace('person_column = "basket_total"', 'person_column = "who"')
    with pytest.raises(InvalidConfig, match="person_column: 'who' is not a declared column"):
        PartyConfig.load(_write(conf_dir, "party.toml", bad))


# -- what a person may get wrong: one InvalidConfig line, never a traceback ---------------

_FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _loads_or_refuses(path, loader=PartyConfig.load):
    try:
        return loader(path)
    except InvalidConfig as err:
        assert "\n" not in err.message.strip() and err.reason == "invalid_config"
        return err


@_FUZZ
@given(data=st.binary(min_size=1, max_size=64))
def test_a_config_that_is_not_utf8_is_one_invalid_config_line(conf_dir, data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        data = b"\xff" + data
    path = conf_dir / "party.toml"
    path.write_bytes(PARTY.encode() + data)

    err = _loads_or_refuses(path)

    assert isinstance(err, InvalidConfig) and "not UTF-8" in err.message


@_FUZZ
@given(depth=st.integers(1, 20_000), kind=st.sampled_from(["[", "{a="]))
def test_toml_nested_any_depth_loads_or_is_one_invalid_config_line(conf_dir, depth, kind):
    close = "]" if kind == "[" else "}"
    path = _write(conf_dir, "party.toml", PARTY + f"\n[x]\nv = {kind * depth}1{close * depth}\n")

    err = _loads_or_refuses(path)

    assert isinstance(err, InvalidConfig)  # a key x is unknown, or the nesting is too deep


timeout_values = st.one_of(
    st.text(alphabet="0123456789abc. ", max_size=8).map(lambda t: f'"{t}"'),
    st.booleans().map(lambda b: str(b).lower()),
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["inf", "-inf", "nan", "[1, 2]", "{s = 1}"]),
)


@_FUZZ
@given(
    key=st.sampled_from(["connect_seconds", "job_seconds", "start_seconds", "approval_seconds"]),
    value=timeout_values,
)
def test_any_party_timeout_is_seconds_or_one_line_naming_it(conf_dir, key, value):
    path = _write(conf_dir, "party.toml", PARTY + f"\n[timeouts]\n{key} = {value}\n")

    out = _loads_or_refuses(path)

    if isinstance(out, InvalidConfig):
        assert out.message.startswith(f"timeouts.{key}: expected a positive number of seconds")
    else:
        assert not value.startswith(('"', "t", "f", "[", "{"))  # a string is never a duration


@_FUZZ
@given(
    key=st.sampled_from(["propose_seconds", "approval_seconds", "job_seconds"]),
    value=timeout_values,
)
def test_any_coordinator_timeout_is_seconds_or_one_line_naming_it(conf_dir, key, value):
    path = _write(
        conf_dir,
        "c.toml",
        COORDINATOR.replace("propose_seconds = 5\njob_seconds = 60", f"{key} = {value}"),
    )

    out = _loads_or_refuses(path, CoordinatorConfig.load)

    if isinstance(out, InvalidConfig):
        assert f"timeouts.{key}" in out.message
    else:
        assert not value.startswith(('"', "t", "f", "[", "{"))


def test_a_timeout_given_as_a_string_is_refused(conf_dir):
    path = _write(conf_dir, "party.toml", PARTY + '\n[timeouts]\nconnect_seconds = "30"\n')

    with pytest.raises(InvalidConfig, match="timeouts.connect_seconds: expected a positive"):
        PartyConfig.load(path)


key_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)


@_FUZZ
@given(key=key_names)
def test_an_unknown_top_level_key_is_refused_by_name(conf_dir, key):
    text = f"{key} = 1\n" + PARTY
    out = _loads_or_refuses(_write(conf_dir, "party.toml", text))

    if key in {"name", "listen", "coordinator", "mpc_ports", "advertise", "coordinator_name"}:
        assert isinstance(out, InvalidConfig)  # a known key twice, or of the wrong type
    elif key in {"state_dir", "tls", "mpc_host", "datasets", "timeouts"}:
        assert isinstance(out, InvalidConfig | PartyConfig)
    else:
        assert isinstance(out, InvalidConfig) and out.message.startswith(f"{key}: unknown key")


@_FUZZ
@given(key=key_names)
def test_an_unknown_dataset_key_is_refused_by_name(conf_dir, key):
    text = PARTY.replace('description = "basket totals"', f'description = "b"\n{key} = 1')
    out = _loads_or_refuses(_write(conf_dir, "party.toml", text))

    known = {"name", "description", "allowed_protocols", "clamp", "columns", "privacy"}
    known |= {"policy", "path", "url", "query", "table", "format", "timeout_seconds"}
    if key not in known:
        assert isinstance(out, InvalidConfig)
        assert out.message.startswith(f"datasets[0].{key}: unknown key"), out.message


def test_an_unknown_coordinator_key_is_refused(conf_dir):
    path = _write(conf_dir, "c.toml", "cache_secs = 5\n" + COORDINATOR)

    with pytest.raises(InvalidConfig, match="cache_secs: unknown key"):
        CoordinatorConfig.load(path)


@_FUZZ
@given(name=st.text(alphabet="abcxyz_", min_size=1, max_size=6))
def test_a_dataset_name_declared_twice_is_refused(conf_dir, name):
    head, rest = PARTY.split("[[datasets]]", 1)
    dataset, tls = rest.split("\n[tls]", 1)
    dataset = dataset.replace('name = "orders"', f'name = "{name}"')
    text = f"{head}[[datasets]]{dataset}\n[[datasets]]{dataset}\n[tls]{tls}"

    with pytest.raises(InvalidConfig, match=rf"datasets\[1\]\.name: a dataset '{name}' is decl"):
        PartyConfig.load(_write(conf_dir, "party.toml", text))


@_FUZZ
@given(name=st.text(alphabet="abcxyz_", min_size=1, max_size=6))
def test_a_column_name_declared_twice_is_refused(conf_dir, name):
    column = '\n[[datasets.columns]]\nname = "{}"\ntype = "float"\nlower = 0\nupper = 1\n'
    text = PARTY.replace('name = "basket_total"', f'name = "{name}"').replace(
        "\n[tls]", column.format(name) + "\n[tls]"
    )

    with pytest.raises(InvalidConfig, match=rf"columns: a column '{name}' is declared twice"):
        PartyConfig.load(_write(conf_dir, "party.toml", text))


@_FUZZ
@given(value=st.one_of(st.just('"sum"'), st.just("[1]"), st.just("{a = 1}"), st.just('[""]')))
def test_allowed_protocols_must_be_a_list_of_names(conf_dir, value):
    text = PARTY.replace('allowed_protocols = ["sum"]', f"allowed_protocols = {value}")

    with pytest.raises(InvalidConfig, match="allowed_protocols: expected a list of names"):
        PartyConfig.load(_write(conf_dir, "party.toml", text))
