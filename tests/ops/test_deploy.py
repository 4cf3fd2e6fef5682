"""`deploy/` as an operator would apply it, checked by the tools that will apply it.

Kubernetes: the base and the production overlay rendered by kustomize (`kubectl
kustomize`), every object validated against Kubernetes' own schemas
(kubernetes-validate, strict: an unknown field is an error) and every
CloudNativePG object against the CRD schemas in `shared/external/cloudnative-pg/`;
then what the issue asks of them, and that every Secret and ConfigMap a pod mounts
is one the runbook tells the operator to create. systemd: `systemd-analyze verify`
accepts the units (warnings count as failures). Prometheus: `promtool check rules`
and `promtool test rules` on the alerting rules, burn-rate test included.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cdb_service.kernel import codes
from cdb_service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SYSTEMD = ROOT / "deploy" / "systemd"
RULES = ROOT / "deploy" / "prometheus"
CNPG_CRDS = ROOT.parent / "shared" / "external" / "cloudnative-pg"
KUBERNETES = "1.31.0"
# Created by CloudNativePG itself for the cluster's application user.
MADE_BY_OPERATOR = {"cdb-db-app"}


def _kubectl() -> str | None:
    return shutil.which("kubectl")


def _render(directory: Path) -> list[dict[str, Any]]:
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("kubectl is not installed (it renders kustomize; `make test` installs it)")
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the CRD's openAPIV3Schema, for every CloudNativePG kind."""
    if not CNPG_CRDS.is_dir():
        pytest.skip(f"no CloudNativePG CRDs at {CNPG_CRDS}")
    schemas = {}
    for path in CNPG_CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def _validate(objects: list[dict[str, Any]]) -> None:
    crds = _crd_schemas()
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"].startswith("postgresql.cnpg.io/"):
            assert key in crds, f"{name}: no CRD for {key}"
            errors = sorted(jsonschema.Draft7Validator(crds[key]).iter_errors(obj), key=str)
            assert not errors, f"{name}: {[e.message for e in errors]}"
        else:
            try:
                kubernetes_validate.validate(obj, KUBERNETES, strict=True)
            except kubernetes_validate.ValidationError as error:
                raise AssertionError(f"{name}: {error.message} at {list(error.path)}") from None


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return _render(K8S / "overlays" / "production")


def test_base_and_production_validate_against_kubernetes_and_cloudnativepg_schemas(
    production: list[dict[str, Any]],
) -> None:
    _validate(_render(K8S / "base"))
    _validate(production)
    _validate([d for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()) if d])
    assert {o["metadata"].get("namespace") for o in production if o["kind"] != "Namespace"} == {
        "cdb"
    }


def test_the_validators_refuse_a_broken_object(production: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(_by_kind(production, "Deployment")["cdb-service"])
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(AssertionError, match="cdb-service"):
        _validate([deployment])
    cluster = copy.deepcopy(_by_kind(production, "Cluster")["cdb-db"])
    cluster["spec"]["postgresql"]["synchronous"]["method"] = "all"
    with pytest.raises(AssertionError, match="cdb-db"):
        _validate([cluster])


def test_the_service_runs_as_the_issue_asks(production: list[dict[str, Any]]) -> None:
    deployment = _by_kind(production, "Deployment")["cdb-service"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 3
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    spread = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= spread
    labels = spec["template"]["metadata"]["labels"]
    (budget,) = _by_kind(production, "PodDisruptionBudget").values()
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 2 <= budget["spec"]["minAvailable"] < spec["replicas"]
    config = _by_kind(production, "ConfigMap")["cdb-service-config"]["data"]
    assert config["CDB_PROFILE"] == "prod" and config["CDB_AUTO_MIGRATE"] == "false"
    job = _by_kind(production, "Job")["cdb-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    probe = _by_kind(production, "Deployment")["cdb-probe"]["spec"]
    assert probe["replicas"] == 1 and probe["strategy"]["type"] == "Recreate"
    claims = {v["persistentVolumeClaim"]["claimName"] for v in probe["template"]["spec"]["volumes"]
              if "persistentVolumeClaim" in v}  # fmt: skip
    assert claims <= set(_by_kind(production, "PersistentVolumeClaim")) and claims
    policies = _by_kind(production, "NetworkPolicy")
    assert {"Ingress", "Egress"} <= set(policies["cdb-service"]["spec"]["policyTypes"])


def test_writes_have_replicas_and_a_service_gated_by_write_readiness(
    production: list[dict[str, Any]],
) -> None:
    """Issue 27: one readiness for all traffic either took look-ups down with the database
    or sent writes to replicas that could not commit. Look-ups: `cdb-service`, gated by
    /health/ready; writes: `cdb-service-write`, gated by /health/ready/write, on the same
    pods (the templates agree but for the probe and the component label)."""
    deployments, services = _by_kind(production, "Deployment"), _by_kind(production, "Service")
    lookup, write = deployments["cdb-service"], deployments["cdb-service-write"]

    def template(deployment: dict[str, Any]) -> dict[str, Any]:
        return deployment["spec"]["template"]  # type: ignore[no-any-return]

    def probe(deployment: dict[str, Any]) -> str:
        (container,) = template(deployment)["spec"]["containers"]
        return container["readinessProbe"]["httpGet"]["path"]  # type: ignore[no-any-return]

    assert probe(lookup) == "/health/ready" and probe(write) == "/health/ready/write"
    write_labels = template(write)["metadata"]["labels"]
    lookup_labels = template(lookup)["metadata"]["labels"]
    selector = services["cdb-service-write"]["spec"]["selector"]
    assert selector.items() <= write_labels.items()
    assert not selector.items() <= lookup_labels.items(), "writes would reach look-up pods"
    assert services["cdb-service"]["spec"]["selector"].items() <= lookup_labels.items()
    for one, other in ((lookup, write), (write, lookup)):  # neither Deployment owns the other's
        matched = one["spec"]["selector"]["matchLabels"].items()
        assert not matched <= template(other)["metadata"]["labels"].items()
    assert write["spec"]["replicas"] >= 2

    def same_pod(deployment: dict[str, Any]) -> str:
        text = yaml.safe_dump(template(deployment)).replace("component: write",
                                                             "component: lookup")  # fmt: skip
        return text.replace("/health/ready/write", "/health/ready")

    differing = [line for line in same_pod(write).splitlines()
                 if line not in same_pod(lookup).splitlines()]  # fmt: skip
    # Only the probe's timing may differ (writes are checked more often).
    assert all(k in line for line in differing for k in ("periodSeconds",)), differing


def test_the_database_is_a_replicated_archived_cloudnativepg_cluster(
    production: list[dict[str, Any]],
) -> None:
    cluster = _by_kind(production, "Cluster")["cdb-db"]["spec"]
    assert cluster["instances"] == 3
    assert cluster["postgresql"]["synchronous"]["number"] >= 1
    assert cluster["postgresql"]["synchronous"]["dataDurability"] == "required"
    assert cluster["backup"]["barmanObjectStore"]["wal"]  # WAL archived continuously
    (backup,) = _by_kind(production, "ScheduledBackup").values()
    assert backup["spec"]["cluster"]["name"] == "cdb-db"
    # The service reaches the primary through the -rw service the operator maintains.
    env = _by_kind(production, "Deployment")["cdb-service"]["spec"]["template"]["spec"]
    url = next(e for e in env["containers"][0]["env"] if e["name"] == "CDB_DATABASE_URL")
    assert url["valueFrom"]["secretKeyRef"]["name"] == "cdb-db-app"


def test_every_secret_and_config_map_a_pod_needs_is_documented(
    production: list[dict[str, Any]],
) -> None:
    example = [d for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()) if d]
    known = {o["metadata"]["name"] for o in [*production, *example]
             if o["kind"] in ("Secret", "ConfigMap")} | MADE_BY_OPERATOR  # fmt: skip
    needed: set[str] = set()
    for obj in production:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            needed |= {volume[k].get("secretName") or volume[k].get("name")
                       for k in ("secret", "configMap") if k in volume}  # fmt: skip
        for container in pod["containers"]:
            needed |= {e["configMapRef"]["name"] for e in container.get("envFrom", [])}
            needed |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                       if "secretKeyRef" in e.get("valueFrom", {})}  # fmt: skip
    assert needed - known == set()
    runbook = (ROOT / "docs" / "operations.md").read_text()
    for name in needed - MADE_BY_OPERATOR - {"cdb-service-config"}:
        assert name in runbook, f"docs/operations.md does not say how to create {name}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_units_verify_cleanly(tmp_path: Path) -> None:
    # The units name the installed binary; here, this checkout's (verify needs it to exist).
    binary = str(Path(sys.executable).with_name("cdb-service"))
    units = sorted([*SYSTEMD.glob("*.service"), *SYSTEMD.glob("*.timer")])
    assert {u.name for u in units} >= {"cdb-service.service", "cdb-probe.service",
                                       "cdb-mirror.service", "cdb-reports.timer",
                                       "cdb-connector-sync.service"}  # fmt: skip
    for unit in units:
        text = unit.read_text().replace("/opt/cdb-service/bin/cdb-service", binary)
        (tmp_path / unit.name).write_text(text)
        if unit.suffix == ".service" and "[Install]" in text:
            for line in ("ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                         "StateDirectory=", "User="):  # fmt: skip
                assert line in text, f"{unit.name} lacks {line}"
    checked = subprocess.run(["systemd-analyze", "verify", "--man=no",
                              *[str(tmp_path / u.name) for u in units]],
                             capture_output=True, text=True, check=False)  # fmt: skip
    # systemd only warns about a bad directive and ignores it: a warning is a failure here.
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), (
        checked.stdout + checked.stderr
    )


def test_the_reports_timer_runs_every_owner_s_quality_report_then_the_certificates(
    tmp_path: Path,
) -> None:
    """What cdb-reports.service runs, run here as systemd would run it (its `$$` made a
    shell `$`, its paths this checkout's and a scratch directory's) for two owners."""
    text = (SYSTEMD / "cdb-reports.service").read_text().replace("\\\n", " ")
    starts = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("ExecStart=")]
    (listed,) = [x for x in text.splitlines() if x.startswith('Environment="CDB_REPORT_OWNERS=')]
    owners = listed.strip('"').split("=", 2)[2].split()
    assert sorted(owners) == sorted(codes.OWNERS)
    # Expired personal data is erased first (issue 31); the certificate report's exit
    # status (1: some expire) is the unit's: it runs last.
    assert len(starts) == 3 and starts[0].endswith("cdb-service erase --expired")
    assert starts[2].endswith("cdb-service certificates --within-days 30")
    exe = str(Path(sys.executable).with_name("cdb-service"))
    env = os.environ | {"CDB_DATA_DIR": str(tmp_path), "CDB_LOG_LEVEL": "WARNING",
                        "CDB_REPORT_OWNERS": "FR EJ"}  # fmt: skip
    env.pop("CDB_DATABASE_URL", None)
    subprocess.run([exe, "migrate"], env=env, check=True, capture_output=True)
    erase = starts[0].replace("/opt/cdb-service/bin/cdb-service", exe).split()
    erased = subprocess.run(erase, env=env, capture_output=True, text=True, check=False)
    assert erased.returncode == 0, erased.stderr
    reports = tmp_path / "reports"
    reports.mkdir()  # StateDirectory= makes it
    loop = (starts[1].replace("$$", "$").replace("/opt/cdb-service/bin/cdb-service", exe)
            .replace("/var/lib/cdb/reports", str(reports)))  # fmt: skip
    assert loop.startswith("/bin/sh -c '") and loop.endswith("'")
    done = subprocess.run(["/bin/sh", "-c", loop[len("/bin/sh -c '") : -1]], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in reports.iterdir()) == ["quality-EJ.csv", "quality-FR.csv"]
    header = (reports / "quality-FR.csv").read_text().splitlines()[0]
    assert header == "id,severity,rule,kind,key,entry_id,message,action"


NO_PROMTOOL = "promtool is not installed (Debian: prometheus; `make test` installs it)"


@pytest.mark.skipif(shutil.which("promtool") is None, reason=NO_PROMTOOL)
def test_alerting_rules_check_and_their_burn_rate_tests_pass() -> None:
    for command in (
        ["check", "rules", "cdb-alerts.yaml"],
        ["test", "rules", "cdb-alerts.test.yaml"],
    ):
        done = subprocess.run(["promtool", *command], cwd=RULES, capture_output=True, text=True,
                              check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    tests = yaml.safe_load((RULES / "cdb-alerts.test.yaml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", [])}
    assert {"CdbErrorBudgetFastBurn", "CdbRolloutUnconfirmed"} <= tested


def test_the_image_is_the_one_the_manifests_run(production: list[dict[str, Any]]) -> None:
    """deploy/image/Containerfile and the manifests agree: the tag is the package's
    version, the user is the pods' runAsUser, the image's volumes are exactly the
    service container's writable mounts (its root file system is read-only), and the
    image installs with the script the install test runs."""
    containerfile = (ROOT / "deploy" / "image" / "Containerfile").read_text()
    project = (ROOT / "pyproject.toml").read_text()
    version = next(line.split('"')[1] for line in project.splitlines()
                   if line.startswith("version = "))  # fmt: skip
    user = next(line.split()[1] for line in containerfile.splitlines() if line.startswith("USER "))
    (volume_line,) = [line for line in containerfile.splitlines() if line.startswith("VOLUME ")]
    volumes = yaml.safe_load(volume_line.removeprefix("VOLUME "))
    assert "install.sh" in next(
        line for line in containerfile.splitlines() if line.startswith("RUN WHEELHOUSE=")
    )
    assert 'CMD ["cdb-healthcheck", "live"]' in containerfile
    for obj in production:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in pod["containers"]:
            if container["image"].rsplit(":", 1)[0].endswith("/cdb-service"):
                assert container["image"].endswith(f":{version}"), container["image"]
                context = pod["securityContext"]
                assert f"{context['runAsUser']}:{context['runAsGroup']}" == user, obj["metadata"]
    service = _by_kind(production, "Deployment")["cdb-service"]["spec"]["template"]["spec"]
    (container,) = service["containers"]
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == set(volumes)


# Between the end of the drain and the exit: the lifespan closes the pools and the lookup
# index, the supervisor joins its workers. Measured well under a second; five to spare.
CLOSING_DOWN_S = 5


def _unit_settings(text: str) -> tuple[int, dict[str, str]]:
    """A unit's TimeoutStopSec (seconds) and its Environment= variables."""
    timeout, variables = None, {}
    for line in text.splitlines():
        if line.startswith("TimeoutStopSec="):
            timeout = int(line.removeprefix("TimeoutStopSec="))
        elif line.startswith("Environment="):
            variables |= dict(pair.split("=", 1) for pair in line.split("=", 1)[1].split())
    assert timeout is not None, "the unit sets no TimeoutStopSec: systemd's 90 s default"
    return timeout, variables


def test_the_stop_timeouts_agree_and_the_drain_fits_inside_them(
    production: list[dict[str, Any]],
) -> None:
    """systemd's TimeoutStopSec and Kubernetes' terminationGracePeriodSeconds are one
    figure, and the service's drain budget (CDB_DRAIN_BUDGET_S, as each sets it, or the
    default) ends inside both, after the pod's preStop sleep, with room to close down:
    a stop that outlasts them ends in SIGKILL, an import cut mid-commit and no goodbye."""
    stop_timeout, unit_env = _unit_settings((SYSTEMD / "cdb-service.service").read_text())
    pod = _by_kind(production, "Deployment")["cdb-service"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    config = _by_kind(production, "ConfigMap")["cdb-service-config"]["data"]
    pod_env = config | {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    default = Settings.model_fields["drain_budget_s"].default
    unit_budget = int(unit_env.get("CDB_DRAIN_BUDGET_S", default))
    pod_budget = int(pod_env.get("CDB_DRAIN_BUDGET_S", default))
    assert stop_timeout == grace, (stop_timeout, grace)
    assert unit_budget == pod_budget, (unit_budget, pod_budget)
    assert unit_budget + CLOSING_DOWN_S <= stop_timeout, (unit_budget, stop_timeout)
    assert pre_stop + pod_budget + CLOSING_DOWN_S <= grace, (pre_stop, pod_budget, grace)
