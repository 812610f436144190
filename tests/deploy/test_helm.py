"""The Helm chart: lint, render, Kubernetes schemas, hardening, optional objects, values schema."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.paths import CHART_DIR, REPO_ROOT

# jsonschema comes with kubernetes-validate; it ships no type stubs.
jsonschema: Any = importlib.import_module("jsonschema")

Manifest = dict[str, Any]
Renderer = Callable[..., list[Manifest]]
Find = Callable[..., Manifest]

CI_NAMES = sorted(
    p.name.removesuffix("-values.yaml") for p in (CHART_DIR / "ci").glob("*-values.yaml")
)
# The oldest and newest Kubernetes versions whose schemas kubernetes-validate bundles.
KUBE_VERSIONS = ["1.25.0", "1.37.0"]
CORE_KINDS = {"ConfigMap", "Deployment", "Service", "ServiceAccount"}
# values.yaml blocks whose keys are separate settings, each documented on its own.
SECTIONS = {
    "image", "serviceAccount", "service", "serviceMonitor", "prometheusRule", "dashboards",
    "networkPolicy", "podDisruptionBudget", "sharding",
}  # fmt: skip

# Prometheus Operator CRDs are not in kubernetes-validate's schemas. These are the parts
# of their monitoring.coreos.com/v1 OpenAPI schemas the chart uses, closed
# (additionalProperties: false) so a misspelt field fails as it would against the CRD.
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {
    "type": "string",
    "pattern": r"^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$",
}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string", "minLength": 1}, "namespace": {"type": "string"}},
}
_RELABEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "action": {"type": "string"},
        "modulus": {"type": "integer"},
        "regex": {"type": "string"},
        "replacement": {"type": "string"},
        "separator": {"type": "string"},
        "sourceLabels": {"type": "array", "items": {"type": "string"}},
        "targetLabel": {"type": "string"},
    },
}


def _crd(spec: dict[str, Any]) -> dict[str, Any]:
    """A monitoring.coreos.com/v1 object whose spec must match `spec` (closed)."""
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": _METADATA,
            "spec": {"type": "object", "additionalProperties": False, **spec},
        },
    }


SERVICE_MONITOR_SCHEMA = _crd(
    {
        "required": ["selector", "endpoints"],
        "properties": {
            "jobLabel": {"type": "string"},
            "sampleLimit": {"type": "integer", "minimum": 0},
            "targetLabels": {"type": "array", "items": {"type": "string"}},
            "namespaceSelector": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "any": {"type": "boolean"},
                    "matchNames": {"type": "array", "items": {"type": "string"}},
                },
            },
            "selector": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"matchLabels": _STR_MAP, "matchExpressions": {"type": "array"}},
            },
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string"},
                        "scheme": {"enum": ["http", "https"]},
                        "tlsConfig": {"type": "object"},
                        "basicAuth": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "username": {"type": "object"},
                                "password": {"type": "object"},
                            },
                        },
                        "interval": _DURATION,
                        "scrapeTimeout": _DURATION,
                        "honorLabels": {"type": "boolean"},
                        "relabelings": {"type": "array", "items": _RELABEL},
                        "metricRelabelings": {"type": "array", "items": _RELABEL},
                    },
                },
            },
        },
    }
)
PROMETHEUS_RULE_SCHEMA = _crd(
    {
        "required": ["groups"],
        "properties": {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "rules"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "interval": _DURATION,
                        "limit": {"type": "integer"},
                        "partial_response_strategy": {"type": "string"},
                        "rules": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["expr"],
                                "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                "properties": {
                                    "alert": {"type": "string"},
                                    "record": {"type": "string"},
                                    "expr": {"type": ["string", "integer"]},
                                    "for": _DURATION,
                                    "keep_firing_for": _DURATION,
                                    "labels": _STR_MAP,
                                    "annotations": _STR_MAP,
                                },
                            },
                        },
                    },
                },
            },
        },
    }
)
CRD_SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR_SCHEMA, "PrometheusRule": PROMETHEUS_RULE_SCHEMA}


def _workload(objects: list[Manifest]) -> Manifest:
    """The Deployment, or (sharded) the StatefulSet: the chart renders exactly one."""
    (workload,) = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    return workload


def _pod_spec(objects: list[Manifest], find: Find) -> dict[str, Any]:
    spec: dict[str, Any] = _workload(objects)["spec"]["template"]["spec"]
    return spec


def _container(objects: list[Manifest], find: Find) -> dict[str, Any]:
    containers = _pod_spec(objects, find)["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


# --- lint and Kubernetes schemas ------------------------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("ci_name", CI_NAMES)
def test_strict_lint(
    helm: Any, ci_values: dict[str, dict[str, Any]], ci_name: str, kube_version: str
) -> None:
    report = helm.lint(
        str(CHART_DIR), ci_values[ci_name], strict=True, kube_version=f"v{kube_version}"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"], report["errors"]
    assert not problems, problems


def test_ci_values_cover_the_required_cases(ci_values: dict[str, dict[str, Any]]) -> None:
    assert ci_values["default"] == {}, "the defaults case must be an empty file"
    assert ci_values["existing-secret"]["existingSecret"]
    assert "eks.amazonaws.com/role-arn" in ci_values["irsa"]["serviceAccount"]["annotations"]
    everything = ci_values["all-on"]
    for key in ("serviceMonitor", "prometheusRule", "dashboards", "networkPolicy"):
        assert everything[key]["enabled"] is True, key
    assert everything["podDisruptionBudget"]["enabled"] is True
    for key in ("extraEnv", "extraVolumes", "extraVolumeMounts", "extraArgs"):
        assert everything[key], key


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("ci_name", CI_NAMES)
def test_rendered_objects_validate(
    render: Renderer, ci_values: dict[str, dict[str, Any]], ci_name: str, kube_version: str
) -> None:
    objects = render(ci_values[ci_name])
    assert CORE_KINDS - {"ConfigMap", "Deployment"} <= {o["kind"] for o in objects}
    assert _workload(objects)
    for obj in objects:
        kind = obj["kind"]
        if kind in CRD_SCHEMAS:
            # Not in kubernetes-validate's bundled schemas: checked against the CRD subset.
            jsonschema.validate(obj, CRD_SCHEMAS[kind])
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = ".".join(str(p) for p in err.path)
            pytest.fail(f"{kind}/{obj['metadata']['name']} at {where}: {err.message}")


# --- hardening, probes, service -------------------------------------------------------


@pytest.mark.parametrize("ci_name", CI_NAMES)
def test_pod_meets_restricted_pod_security_standard(
    render: Renderer, find: Find, ci_values: dict[str, dict[str, Any]], ci_name: str
) -> None:
    objects = render(ci_values[ci_name])
    pod = _pod_spec(objects, find)
    container = _container(objects, find)
    pod_sc, sc = pod["securityContext"], container["securityContext"]

    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == 65532, "must match the image's numeric user"
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc.get("privileged", False) is False
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(forbidden), forbidden
    allowed_volume_types = {"configMap", "secret", "emptyDir", "projected", "downwardAPI"}
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= allowed_volume_types, volume
    assert pod["automountServiceAccountToken"] is False


def test_probes_ports_and_service(render: Renderer, find: Find) -> None:
    objects = render()
    container = _container(objects, find)
    assert container["ports"] == [{"name": "http", "containerPort": 9689, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http"}
    assert "--web.listen-address=:9689" in container["args"]
    assert "--config.file=/etc/iot-connectivity-exporter/config.yaml" in container["args"]
    assert container["image"].endswith(":0.1.0"), "the tag defaults to the appVersion"

    service = find(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 9689, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = find(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert _pod_spec(objects, find)["terminationGracePeriodSeconds"] >= 5


# --- config: checksum, sources, the exporter's own check ------------------------------


def _checksum(objects: list[Manifest], find: Find) -> str:
    annotations = find(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    checksum: str = annotations["checksum/config"]
    return checksum


def test_checksum_follows_the_config(render: Renderer, find: Find) -> None:
    base = render()
    config_text = find(base, "ConfigMap")["data"]["config.yaml"]
    assert _checksum(base, find) == hashlib.sha256(config_text.rstrip("\n").encode()).hexdigest()

    same = render({"replicaCount": 1, "logLevel": "debug", "podAnnotations": {"a": "b"}})
    changed = render({"config": {"poll": {"interval": "30s"}}})
    more_things = render({"config": {"things": ["sensor-0001"]}})
    assert _checksum(same, find) == _checksum(base, find)
    assert _checksum(changed, find) != _checksum(base, find)
    assert _checksum(more_things, find) not in {_checksum(base, find), _checksum(changed, find)}
    assert find(same, "Deployment")["spec"]["template"]["metadata"]["annotations"]["a"] == "b"


@pytest.mark.parametrize(
    ("values", "volume"),
    [
        ({"existingSecret": "iot-cfg"}, {"name": "config", "secret": {"secretName": "iot-cfg"}}),
        ({"existingConfigMap": "iot-cm"}, {"name": "config", "configMap": {"name": "iot-cm"}}),
    ],
)
def test_existing_config_object(
    render: Renderer, find: Find, values: dict[str, Any], volume: dict[str, Any]
) -> None:
    objects = render(values)
    assert "ConfigMap" not in {o["kind"] for o in objects}, "no ConfigMap rendered from values"
    assert volume in _pod_spec(objects, find)["volumes"]
    other = render({**values, "configKey": "exporter.yaml"})
    assert _checksum(other, find) != _checksum(objects, find)
    args = _container(other, find)["args"]
    assert "--config.file=/etc/iot-connectivity-exporter/exporter.yaml" in args


def test_two_config_sources_fail_with_a_clear_message(render: Renderer, helm: Any) -> None:
    with pytest.raises(helm.HelmError, match="at most one of existingConfigMap and existingSecret"):
        render({"existingSecret": "a", "existingConfigMap": "b"})


@pytest.mark.parametrize("ci_name", [n for n in CI_NAMES if n != "existing-secret"])
def test_rendered_config_passes_the_exporters_check(
    render: Renderer,
    find: Find,
    ci_values: dict[str, dict[str, Any]],
    ci_name: str,
    tmp_path: Path,
) -> None:
    config_map = find(render(ci_values[ci_name]), "ConfigMap", "-exporter")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_map["data"]["config.yaml"], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IOT_EXPORTER_"))}
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", "--config.file", str(config_file)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "config OK" in output


# --- IRSA and the ServiceAccount ------------------------------------------------------


def test_irsa_annotation(
    render: Renderer, find: Find, ci_values: dict[str, dict[str, Any]]
) -> None:
    role = ci_values["irsa"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    objects = render(ci_values["irsa"])
    account = find(objects, "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role
    assert _pod_spec(objects, find)["serviceAccountName"] == account["metadata"]["name"]
    assert "annotations" not in find(render(), "ServiceAccount")["metadata"]


def test_service_account_annotations_are_templated(render: Renderer, find: Find) -> None:
    annotation = {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/{{ .Release.Name }}"
    }
    objects = render({"serviceAccount": {"annotations": annotation}}, name="fleet-a")
    annotations = find(objects, "ServiceAccount")["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/fleet-a"


def test_existing_service_account(render: Renderer, find: Find) -> None:
    objects = render({"serviceAccount": {"create": False, "name": "shared-irsa"}})
    assert "ServiceAccount" not in {o["kind"] for o in objects}
    assert _pod_spec(objects, find)["serviceAccountName"] == "shared-irsa"


# --- optional objects -----------------------------------------------------------------


def test_defaults_render_only_the_core_objects(render: Renderer) -> None:
    kinds = sorted(o["kind"] for o in render())
    assert kinds == sorted(CORE_KINDS)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ({"serviceMonitor": {"enabled": True}}, "ServiceMonitor"),
        ({"prometheusRule": {"enabled": True}}, "PrometheusRule"),
        ({"dashboards": {"enabled": True}}, "ConfigMap"),
        ({"networkPolicy": {"enabled": True}}, "NetworkPolicy"),
        ({"podDisruptionBudget": {"enabled": True}}, "PodDisruptionBudget"),
    ],
)
def test_each_optional_object_appears_only_when_enabled(
    render: Renderer, values: dict[str, Any], kind: str
) -> None:
    base = sorted(o["kind"] for o in render())
    enabled = sorted(o["kind"] for o in render(values))
    assert enabled == sorted([*base, kind])


def test_everything_on(render: Renderer, find: Find, ci_values: dict[str, dict[str, Any]]) -> None:
    objects = render(ci_values["all-on"])
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            *CORE_KINDS,
            "ConfigMap",
            "ServiceMonitor",
            "PrometheusRule",
            "NetworkPolicy",
            "PodDisruptionBudget",
        ]
    )
    container = _container(objects, find)
    assert {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"} in container["env"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    # One value sets the path the exporter serves and the path the ServiceMonitor scrapes.
    assert "--web.telemetry-path=/iot/metrics" in container["args"]
    assert find(objects, "ServiceMonitor")["spec"]["endpoints"][0]["path"] == "/iot/metrics"
    assert any(v["name"] == "tmp" for v in _pod_spec(objects, find)["volumes"])
    assert "@sha256:" in container["image"]
    assert find(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_service_monitor_targets_the_service(render: Renderer, find: Find) -> None:
    objects = render({"serviceMonitor": {"enabled": True, "additionalLabels": {"release": "kps"}}})
    monitor, service = find(objects, "ServiceMonitor"), find(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {
        "matchNames": [service["metadata"]["namespace"]]
    }
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["scheme"] == "http"
    assert "tlsConfig" not in endpoint
    assert "basicAuth" not in endpoint


def test_service_monitor_limits_samples_and_copies_target_labels(
    render: Renderer, find: Find
) -> None:
    plain = find(render({"serviceMonitor": {"enabled": True}}), "ServiceMonitor")
    assert "sampleLimit" not in plain["spec"]
    assert "targetLabels" not in plain["spec"]
    values = {"enabled": True, "sampleLimit": 80000, "targetLabels": ["region", "account"]}
    monitor = find(render({"serviceMonitor": values}), "ServiceMonitor")
    assert monitor["spec"]["sampleLimit"] == 80000
    assert monitor["spec"]["targetLabels"] == ["region", "account"]


@pytest.mark.parametrize(
    ("values", "strategy"),
    [
        pytest.param({}, None, id="polling only: Kubernetes' rolling update"),
        pytest.param(
            {"config": {"events": {"queue_url": "https://sqs.us-east-1.amazonaws.com/1/q"}}},
            {"type": "Recreate"},
            id="events: never two consumers on one queue",
        ),
        pytest.param(
            {
                "config": {"events": {"queue_url": "https://sqs.us-east-1.amazonaws.com/1/q"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0}},
            },
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0}},
            id="the user's strategy wins",
        ),
    ],
)
def test_lifecycle_events_make_the_deployment_recreate(
    render: Renderer, find: Find, values: dict[str, Any], strategy: dict[str, Any] | None
) -> None:
    deployment = find(render(values), "Deployment")
    assert deployment["spec"].get("strategy") == strategy


def test_service_monitor_scrapes_tls_and_basic_auth_when_asked(
    render: Renderer, find: Find
) -> None:
    tls = {"ca": {"secret": {"name": "exporter-tls", "key": "ca.crt"}}}
    auth = {
        "username": {"name": "exporter-auth", "key": "username"},
        "password": {"name": "exporter-auth", "key": "password"},
    }
    values = {
        "serviceMonitor": {"enabled": True, "scheme": "https", "tlsConfig": tls, "basicAuth": auth}
    }
    endpoint = find(render(values), "ServiceMonitor")["spec"]["endpoints"][0]
    assert (endpoint["scheme"], endpoint["tlsConfig"], endpoint["basicAuth"]) == (
        "https",
        tls,
        auth,
    )


def test_prometheus_rule_carries_the_shipped_alerts(render: Renderer, find: Find) -> None:
    shipped = yaml.safe_load((CHART_DIR / "files" / "alerts.yaml").read_text(encoding="utf-8"))
    plain = find(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")
    assert plain["spec"]["groups"] == shipped["groups"]

    labelled = find(
        render({"prometheusRule": {"enabled": True, "additionalRuleLabels": {"team": "iot"}}}),
        "PrometheusRule",
    )
    alerts = [r for g in labelled["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts, "the shipped rules have no alert"
    for rule in alerts:
        assert rule["labels"]["team"] == "iot", rule["alert"]


def test_dashboard_config_map(render: Renderer, find: Find) -> None:
    shipped = json.loads((CHART_DIR / "files" / "dashboard.json").read_text(encoding="utf-8"))
    objects = render({"dashboards": {"enabled": True, "annotations": {"grafana_folder": "IoT"}}})
    dashboard = find(objects, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "IoT"}
    assert json.loads(dashboard["data"]["iot-connectivity-exporter.json"]) == shipped

    relabelled = render({"dashboards": {"enabled": True, "labels": {"my_dashboards": "yes"}}})
    labels = find(relabelled, "ConfigMap", "-dashboard")["metadata"]["labels"]
    assert labels["my_dashboards"] == "yes"


def test_alerts_and_dashboard_have_one_copy() -> None:
    """The chart's files/ and monitoring/ must be the same files, not copies that drift."""
    for name in ("alerts.yaml", "dashboard.json"):
        in_chart = CHART_DIR / "files" / name
        assert in_chart.is_file(), in_chart
        links = [p for p in (in_chart, *(REPO_ROOT / "monitoring").glob(name)) if p.is_symlink()]
        copies = {p.resolve() for p in (in_chart, *(REPO_ROOT / "monitoring").glob(name))}
        assert len(copies) == 1, f"{name}: more than one real copy: {sorted(copies)}"
        if (REPO_ROOT / "monitoring" / name).exists():
            assert links, f"{name}: monitoring/ and the chart must share one file via a symlink"


def test_packaged_chart_carries_the_files_themselves(helm: Any, tmp_path: Path) -> None:
    """`helm package` follows the symlinks: the archive works away from the repository."""
    archive = Path(helm.package(str(CHART_DIR), destination=str(tmp_path)))
    packaged = helm.Chart.load_archive(archive.read_bytes())
    values = {"prometheusRule": {"enabled": True}, "dashboards": {"enabled": True}}
    rendered = packaged.render(values, name="iotx", namespace="monitoring")
    docs = [yaml.safe_load(text) for path, text in rendered.items() if path.endswith(".yaml")]
    kinds = {d["kind"] for d in docs if d}
    assert {"PrometheusRule", "ConfigMap"} <= kinds
    dashboard = next(d for d in docs if d and d["metadata"]["name"].endswith("-dashboard"))
    # A ConfigMap holds at most 1 MiB.
    assert len(dashboard["data"]["iot-connectivity-exporter.json"].encode()) < 1024 * 1024


def test_network_policy_allows_scrapes_and_aws(render: Renderer, find: Find) -> None:
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    policy = find(
        render({"networkPolicy": {"enabled": True, "ingressFrom": peers}}), "NetworkPolicy"
    )
    assert policy["spec"]["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}], "from": peers}
    ]
    egress_ports = {
        (p["port"], p["protocol"]) for r in policy["spec"]["egress"] for p in r["ports"]
    }
    assert {(53, "UDP"), (443, "TCP")} <= egress_ports
    # EKS Pod Identity and the node role (IMDS) hand out credentials on port 80.
    credentials = [r for r in policy["spec"]["egress"] if r.get("to")]
    assert credentials == [
        {
            "to": [
                {"ipBlock": {"cidr": cidr}}
                for cidr in (
                    "169.254.170.23/32",
                    "169.254.169.254/32",
                    "fd00:ec2::23/128",
                    "fd00:ec2::254/128",
                )
            ],
            "ports": [{"port": 80, "protocol": "TCP"}],
        }
    ]
    irsa_only = find(
        render({"networkPolicy": {"enabled": True, "allowCredentialEndpoints": False}}),
        "NetworkPolicy",
    )
    assert not [r for r in irsa_only["spec"]["egress"] if r.get("to")]
    open_egress = find(
        render({"networkPolicy": {"enabled": True, "restrictEgress": False}}), "NetworkPolicy"
    )
    assert open_egress["spec"]["policyTypes"] == ["Ingress"]


def test_pod_disruption_budget_min_available(render: Renderer, find: Find) -> None:
    values = {"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}}
    spec = find(render(values), "PodDisruptionBudget")["spec"]
    assert spec["minAvailable"] == "50%"
    assert "maxUnavailable" not in spec


def test_notes_warn_about_more_than_one_replica(render_raw: Callable[..., dict[str, str]]) -> None:
    def notes(values: dict[str, Any]) -> str:
        return next(t for p, t in render_raw(values).items() if p.endswith("NOTES.txt"))

    own_things = {"config": {"things": ["sensor-0001"]}}
    assert "WARNING" not in notes(own_things)
    assert "spends the request budget" in notes({**own_things, "replicaCount": 2})
    assert '"example-thing"' in notes({}), "the defaults' example thing must be pointed out"
    assert "WARNING" not in notes({"existingSecret": "cfg"})


# --- values schema --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"replicas": 2}, "additional properties 'replicas' not allowed"),
        ({"replicaCount": "two"}, "/replicaCount': got string, want integer"),
        (
            {"serviceMonitor": {"enabled": "yes"}},
            "/serviceMonitor/enabled': got string, want boolean",
        ),
        ({"service": {"port": "http"}}, "/service/port': got string, want integer"),
        ({"service": {"prot": 9689}}, "additional properties 'prot' not allowed"),
        ({"config": {"things": "sensor-1"}}, "/config/things': got string, want array"),
        ({"logLevel": "verbose"}, "/logLevel'"),
        ({"image": {"digest": "latest"}}, "/image/digest'"),
        ({"extraArgs": [{"flag": 1}]}, "/extraArgs/0'"),
        ({"serviceMonitor": {"scheme": "ftp"}}, "/serviceMonitor/scheme'"),
    ],
)
def test_schema_rejects_bad_values(
    helm: Any, render: Renderer, values: dict[str, Any], expected: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    assert expected in str(caught.value)
    report = helm.lint(str(CHART_DIR), values, strict=True)
    assert any(expected in str(m["error"]) for m in report["messages"] if m["severity"] >= 3), (
        report
    )


def test_schema_accepts_every_documented_value(helm: Any, chart: Any) -> None:
    """Each top-level key of values.yaml is in the schema, and the README documents it."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False
    assert set(defaults) <= set(schema["properties"])
    chart.validate_schema(defaults)
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    for key, value in defaults.items():
        leaves = [f"{key}.{sub}" for sub in value] if key in SECTIONS else [key]
        for leaf in leaves:
            assert f"`{leaf}`" in readme, f"README.md does not document {leaf}"


# --- sharding -------------------------------------------------------------------------


@pytest.mark.parametrize("shards", [1, 4])
def test_shards_make_a_stateful_set_that_tells_each_pod_its_shard(
    render: Renderer, find: Find, shards: int
) -> None:
    objects = render({"sharding": {"totalShards": shards}, "serviceMonitor": {"enabled": True}})
    kinds = {o["kind"] for o in objects}
    service = find(objects, "Service")
    container = _container(objects, find)
    if shards == 1:
        assert "StatefulSet" not in kinds
        assert "Deployment" in kinds
        assert not any(a.startswith("--total-shards") for a in container["args"])
        assert "clusterIP" not in service["spec"]
        return
    assert "Deployment" not in kinds
    sts = find(objects, "StatefulSet")
    assert sts["spec"]["replicas"] == shards
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert f"--total-shards={shards}" in container["args"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {
        "IOT_EXPORTER_SHARD": "metadata.labels['apps.kubernetes.io/pod-index']",
        "IOT_EXPORTER_POD_NAME": "metadata.name",
    }
    # Headless: the ServiceMonitor's endpoints are the pods, one target per shard.
    assert service["spec"]["clusterIP"] == "None"
    monitor = find(objects, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert sts["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()


def test_sharded_pods_keep_extra_env(render: Renderer, find: Find) -> None:
    objects = render(
        {"sharding": {"totalShards": 2}, "extraEnv": [{"name": "AWS_REGION", "value": "x"}]}
    )
    names = [e["name"] for e in _container(objects, find)["env"]]
    assert names == ["IOT_EXPORTER_SHARD", "IOT_EXPORTER_POD_NAME", "AWS_REGION"]
