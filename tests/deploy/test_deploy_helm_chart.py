"""deploy/helm/ensnif: rendered by Helm itself (the Helm v4 Go SDK that the PyPI package
helm-python-sdk bundles: no helm binary, no cluster; in a child process, see helm_render),
linted, and every rendered object
validated against the Kubernetes 1.37 JSON schemas shipped offline by kubernetes-validate
(strict: unknown fields are errors too)."""

from __future__ import annotations

import copy
import importlib.util
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ensnif_mpc.config import CoordinatorConfig, PartyConfig
from tests.deploy.conftest import CHART, with_tls
from tests.deploy.helm_render import Helm, HelmRefused

if importlib.util.find_spec("helm_python") is None:  # found, not imported (see helm_render)
    pytest.skip("helm-python-sdk (dev extra) is not installed", allow_module_level=True)
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="dev extra")

K8S = "1.37.0"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
TLS = {"ca": PEM, "cert": PEM, "key": PEM}
MEMBER = {"party": {"name": "grocery", "tls": TLS}}
OPERATOR = {"coordinator": {"enabled": True, "tls": TLS}, "party": {"enabled": False}}
DATASETS = (Path(__file__).resolve().parents[2] / "deploy/compose/party-grocery.toml").read_text()


_helm: Helm | None = None


@pytest.fixture(scope="module", autouse=True)
def helm() -> Iterator[Helm]:
    global _helm
    _helm = Helm()
    yield _helm
    _helm.close()
    _helm = None


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    assert _helm is not None
    manifests = _helm.render(CHART, values)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def schema_errors(objects: list[dict[str, Any]]) -> list[str]:
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, K8S, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = ".".join(str(p) for p in err.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} {where}: {err.message}")
    return errors


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


@pytest.mark.parametrize(
    "values",
    [
        MEMBER,
        OPERATOR,
        {"party": {"name": "grocery", "tls": {"existingSecret": "grocery-tls"}}},
        {
            "coordinator": {
                "enabled": True,
                "tls": {"existingSecret": "coord-tls"},
                "database": {"existingSecret": "ensnif-db"},
                "service": {"type": "LoadBalancer", "annotations": {"a.example/b": "c"}},
                "networkPolicy": {"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]},
            },
            "party": {
                "name": "grocery",
                "tls": TLS,
                "datasetsToml": DATASETS.partition("[[datasets]]")[1]
                + DATASETS.partition("[[datasets]]")[2],
                "data": {"volume": {"persistentVolumeClaim": {"claimName": "orders"}}},
                "networkPolicy": {"mpcFrom": [{"ipBlock": {"cidr": "198.51.100.7/32"}}]},
                "persistence": {"size": "20Gi", "storageClass": "fast"},
                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
            },
            "imagePullSecrets": [{"name": "regcred"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
        },
    ],
    ids=["member", "operator", "member-existing-secret", "everything-set"],
)
def test_every_rendered_object_is_valid_kubernetes(values: dict[str, Any]) -> None:
    objects = render(values)

    assert objects
    assert schema_errors(objects) == []


def test_helm_runtime_stays_out_of_the_pytest_process() -> None:
    render(MEMBER)

    assert "helm_python" not in sys.modules


def test_chart_lints_clean_in_strict_mode(helm: Helm) -> None:
    report = helm.lint(CHART, MEMBER)

    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_member_gets_statefulset_with_secret_pvc_and_exec_health_probes() -> None:
    objects = render(MEMBER)

    (sts,) = by_kind(objects, "StatefulSet")
    (secret,) = by_kind(objects, "Secret")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert sts["spec"]["replicas"] == 1
    assert {v["name"]: v for v in pod["volumes"]}["tls"]["secret"]["secretName"] == secret[
        "metadata"
    ]["name"]
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["state"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"][:3] == [
            "ensnif-healthcheck",
            "--config",
            "/etc/ensnif/party.toml",
        ]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_member_network_policy_opens_only_grpc_and_the_mpc_range() -> None:
    objects = render({"party": {**MEMBER["party"], "mpc": {"firstPort": 42000, "lastPort": 42009}}})

    (policy,) = by_kind(objects, "NetworkPolicy")
    ports = [p for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert ports == [
        {"port": 50061, "protocol": "TCP"},
        {"port": 42000, "endPort": 42009, "protocol": "TCP"},
    ]


def test_member_service_exposes_grpc_and_every_mpc_port() -> None:
    objects = render({"party": {**MEMBER["party"], "mpc": {"firstPort": 42000, "lastPort": 42009}}})

    (service,) = by_kind(objects, "Service")
    assert [p["port"] for p in service["spec"]["ports"]] == [50061, *range(42000, 42010)]


def test_rendered_party_toml_is_accepted_by_the_node_config_loader(
    ca_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_text("customer_id,zip,basket_total\nc1,1000,12.5\n")
    datasets = DATASETS[DATASETS.index("[[datasets]]") :].replace("/srv/ensnif/data", str(data))
    objects = render({"party": {**MEMBER["party"], "datasetsToml": datasets}})
    (config,) = [o for o in by_kind(objects, "ConfigMap") if "party.toml" in o["data"]]
    path = tmp_path / "party.toml"
    path.write_text(with_tls(config["data"]["party.toml"], ca_dir, "grocery"))

    loaded = PartyConfig.load(path)

    assert loaded.name == "grocery"
    assert loaded.listen == "0.0.0.0:50061"
    assert loaded.mpc_ports == (41000, 41019)
    assert loaded.advertise == "acme-party.ensnif.svc:50061"
    assert [d.name for d in loaded.datasets] == ["orders"]


def test_rendered_coordinator_toml_is_accepted_by_the_coordinator_config_loader(
    ca_dir: Path, tmp_path: Path
) -> None:
    objects = render(OPERATOR)
    (config,) = by_kind(objects, "ConfigMap")
    text = with_tls(config["data"]["coordinator.toml"], ca_dir, "coordinator")
    path = tmp_path / "coordinator.toml"
    path.write_text(text)

    loaded = CoordinatorConfig.load(path)

    assert loaded.listen == "0.0.0.0:50051"
    assert loaded.database == "sqlite:////var/lib/ensnif/coordinator.db"
    assert tomllib.loads(text)["timeouts"]["propose_seconds"] == 30


def test_operator_database_url_comes_from_a_secret() -> None:
    values: dict[str, Any] = copy.deepcopy(OPERATOR)
    values["coordinator"]["database"] = {"existingSecret": "ensnif-db", "secretKey": "url"}

    (deployment,) = by_kind(render(values), "Deployment")

    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ENSNIF_DATABASE"]["valueFrom"]["secretKeyRef"] == {
        "name": "ensnif-db",
        "key": "url",
    }


# --- bad values: each refused with a message that names the value ---------------------


@pytest.mark.parametrize(
    ("party", "message"),
    [
        ({"port": -1}, "/party/port"),
        ({"port": 70000}, "/party/port"),
        ({"mpc": {"firstPort": 80, "lastPort": 90}}, "/party/mpc/firstPort"),
    ],
    ids=["negative-port", "port-above-65535", "privileged-mpc-port"],
)
def test_out_of_range_port_is_refused_by_the_values_schema(
    party: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmRefused, match=message):
        render({"party": {**MEMBER["party"], **party}})


def test_reversed_mpc_range_is_refused_when_rendering() -> None:
    with pytest.raises(HelmRefused, match="firstPort must not exceed"):
        render({"party": {**MEMBER["party"], "mpc": {"firstPort": 41010, "lastPort": 41000}}})


def test_missing_member_name_is_refused_when_rendering() -> None:
    with pytest.raises(HelmRefused, match="party.name is required"):
        render({"party": {"tls": TLS}})


@pytest.mark.parametrize(
    ("values", "where"),
    [
        (
            {
                "probes": {
                    "liveness": {
                        "initialDelaySeconds": 30,
                        "periodSeconds": "often",
                        "timeoutSeconds": 6,
                        "failureThreshold": 3,
                    }
                }
            },
            "livenessProbe.periodSeconds",
        ),
        ({"podSecurityContext": {"runAsUser": "ensnif"}}, "securityContext.runAsUser"),
        ({"party": {"service": {"type": "ClusterIP", "annotations": {"n": 1}}}}, "annotations.n"),
        ({"party": {"resources": {"limits": {"cpu": ["2"]}}}}, "resources.limits.cpu"),
    ],
    ids=["probe-period-not-a-number", "uid-not-a-number", "annotation-not-a-string", "cpu-a-list"],
)
def test_value_that_makes_an_invalid_object_is_caught_by_the_kubernetes_schema(
    values: dict[str, Any], where: str
) -> None:
    merged: dict[str, Any] = copy.deepcopy(MEMBER)
    for key, value in values.items():
        merged[key] = {**merged.get(key, {}), **value}

    errors = schema_errors(render(merged))

    assert errors, "the Kubernetes schema accepted an invalid object"
    assert all(where in e for e in errors), errors
