"""Deployment files: compose.yaml against the Compose Specification (offline), the structure the
scaled deployment needs, the Dockerfiles under hadolint, and the workers' health check run for
real against Redis and an `esplora worker` (no Docker engine runs here)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from esplora.db import migrate
from support.services import RedisServer, redis_server, unavailable

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))
BIN = Path(sys.executable).parent
ESPLORA_SERVICES = ("migrate", "worker-gpu", "worker-cpu", "ui")
LONG_RUNNING = ("postgres", "redis", "worker-gpu", "worker-cpu", "ui")


def tool(name: str) -> str:
    """A command-line tool of the `dev` extra: beside this interpreter, else on PATH."""
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        unavailable(f"{name} is not installed (pip install -e '.[dev]')")
    return str(found)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves the << merges
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


def validate_compose(path: Path) -> subprocess.CompletedProcess[str]:
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Named volume → path in the container (short syntax ``name:/path[:mode]``)."""
    pairs = (entry.split(":")[:2] for entry in service.get("volumes", []))
    return {source: target for source, target in pairs}


# --- compose.yaml -------------------------------------------------------------------------------


def test_compose_is_valid_under_the_compose_specification() -> None:
    result = validate_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_what_the_specification_does_not_allow(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("restart: unless-stopped", "restrat: no", 1))
    assert validate_compose(broken).returncode != 0


def test_compose_has_the_services_and_volumes_of_the_scaled_deployment(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    assert "version" not in compose
    assert set(services) == {"postgres", "redis", "migrate", "worker-gpu", "worker-cpu", "ui"}
    assert set(compose["volumes"]) == {"pgdata", "redisdata", "esplora-data", "hf-cache"}
    assert mounts(services["postgres"]) == {"pgdata": "/var/lib/postgresql/data"}
    assert mounts(services["redis"]) == {"redisdata": "/data"}
    assert "--appendonly" in services["redis"]["command"]


def test_migrate_runs_once_after_postgres_is_healthy(services: dict[str, Any]) -> None:
    migrate_service = services["migrate"]
    assert migrate_service["command"] == ["db", "upgrade"]
    assert migrate_service["restart"] == "no"
    assert "healthcheck" not in migrate_service
    assert migrate_service["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ["worker-gpu", "worker-cpu", "ui"])
def test_esplora_services_start_after_a_successful_migration(
    services: dict[str, Any], name: str
) -> None:
    depends = services[name]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    if name.startswith("worker"):
        assert depends["redis"]["condition"] == "service_healthy"


def test_workers_consume_their_queue(services: dict[str, Any]) -> None:
    for queue in ("gpu", "cpu"):
        command = services[f"worker-{queue}"]["command"]
        assert command[:3] == ["worker", "--queues", queue] and "--concurrency" in command
    assert services["worker-cpu"]["environment"]["ESPLORA_DEVICE"] == "cpu"


def test_the_gpu_worker_reserves_a_gpu_and_has_replicas(services: dict[str, Any]) -> None:
    deploy = services["worker-gpu"]["deploy"]
    assert int(deploy["replicas"]) >= 2
    devices = deploy["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in services["worker-cpu"]


def test_every_long_running_service_has_a_health_check(services: dict[str, Any]) -> None:
    checks = {name: " ".join(services[name]["healthcheck"]["test"]) for name in LONG_RUNNING}
    assert "pg_isready" in checks["postgres"]
    assert "redis-cli ping" in checks["redis"]
    assert "http://127.0.0.1:8501/_stcore/health" in checks["ui"]
    for queue in ("gpu", "cpu"):
        assert f'inspect ping --timeout 5 -d "{queue}@$$(hostname)"' in checks[f"worker-{queue}"]
    assert services["ui"]["ports"] == ["8501:8501"]


def test_every_esplora_service_shares_the_same_environment_and_data_path(
    services: dict[str, Any],
) -> None:
    environments = [services[name]["environment"] for name in ESPLORA_SERVICES]
    for key in ("ESPLORA_HOME", "ESPLORA_DATABASE_URL", "ESPLORA_BROKER_URL"):
        assert len({env[key] for env in environments}) == 1, key
    home = environments[0]["ESPLORA_HOME"]
    # Defaults point at this file's services; .env may point a workers-only host elsewhere.
    database, broker = (
        environments[0]["ESPLORA_DATABASE_URL"],
        environments[0]["ESPLORA_BROKER_URL"],
    )
    assert re.fullmatch(
        r"\$\{ESPLORA_DATABASE_URL:-postgresql\+psycopg://.+@postgres:5432/esplora\}", database
    )
    assert broker == "${ESPLORA_BROKER_URL:-redis://redis:6379/0}"
    for name in ESPLORA_SERVICES:
        assert mounts(services[name])["esplora-data"] == home, name
    for name in ("worker-gpu", "worker-cpu"):
        hf_home = services[name]["environment"]["HF_HOME"]
        assert mounts(services[name])["hf-cache"] == hf_home, name
    # The images agree with compose on where the data lives (they also run without compose).
    for dockerfile in DOCKERFILES:
        assert f"ESPLORA_HOME={home}" in dockerfile.read_text(), dockerfile.name


def test_every_esplora_variable_in_compose_is_documented_in_env_example() -> None:
    used = set(re.findall(r"\bESPLORA_[A-Z0-9_]+", COMPOSE.read_text()))
    example = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^(ESPLORA_[A-Z0-9_]+)=", example, re.M))
    assert used and used <= documented, sorted(used - documented)


def test_images_are_pinned_and_builds_point_at_existing_dockerfiles(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), name
        if "build" in service:
            assert (REPO / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    built = {services[name]["build"]["dockerfile"] for name in ESPLORA_SERVICES}
    assert built == {f"docker/{path.name}" for path in DOCKERFILES}


# --- Dockerfiles --------------------------------------------------------------------------------


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def test_there_is_a_dockerfile_per_deployable() -> None:
    assert [path.name for path in DOCKERFILES] == [
        "ui.Dockerfile",
        "worker-cpu.Dockerfile",
        "worker-gpu.Dockerfile",
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    command = [tool("hadolint"), "--no-color", "--failure-threshold", "warning", str(dockerfile)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_conventions(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    for word, args in steps:
        if word == "FROM":
            image = args.split()[0]
            assert re.fullmatch(r"[\w./-]+:\d[\w.-]*", image), f"unpinned base {image}"
        if word == "RUN" and "pip install" in args:
            assert "--no-cache-dir" in args, args
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert any(word == "ENV" and "PYTHONDONTWRITEBYTECODE=1" in args for word, args in steps)
    assert steps[-2][0] == "ENTRYPOINT" and steps[-1][0] == "CMD"


@pytest.mark.parametrize(("name", "index"), [("worker-gpu", "/whl/cu"), ("worker-cpu", "/whl/cpu")])
def test_workers_install_torch_from_the_pytorch_index_before_the_project(
    name: str, index: str
) -> None:
    dockerfile = REPO / "docker" / f"{name}.Dockerfile"
    runs = [args for word, args in instructions(dockerfile) if word == "RUN"]
    torch = next(i for i, args in enumerate(runs) if '"torch==${TORCH_VERSION}"' in args)
    project = next(i for i, args in enumerate(runs) if '"/src[${EXTRAS}]"' in args)
    assert torch < project
    text = dockerfile.read_text()
    assert re.search(rf"TORCH_INDEX_URL=https://download\.pytorch\.org{index}", text)
    assert "ARG TORCH_VERSION=2.13.0" in text
    assert "ARG EXTRAS=workers,models" in text


def test_dockerignore_sends_only_the_sources() -> None:
    patterns = (REPO / ".dockerignore").read_text().split()
    assert patterns[patterns.index("*") + 1 :][:1] == ["!pyproject.toml"]
    for excluded in (".venv", "var", ".git", "**/__pycache__"):
        assert excluded in patterns
    for dockerfile in DOCKERFILES:
        for word, args in instructions(dockerfile):
            if word == "COPY" and not args.startswith("--from"):
                for source in args.split()[:-1]:
                    assert f"!{source}" in patterns or f"!{source}/" in patterns, source


def test_ci_installs_what_these_tests_start() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "redis-server" in ci and "postgresql" in ci and "CI=true" in ci
    make = shutil.which("make")
    if make:
        dry = subprocess.run([make, "-n", "test"], capture_output=True, text=True, cwd=REPO)
        assert "pytest" in dry.stdout and "ruff" in dry.stdout, dry.stdout + dry.stderr


# --- the workers' health check, run for real ----------------------------------------------------


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def health_check_command(services: dict[str, Any]) -> str:
    kind, command = services["worker-cpu"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    return str(command).replace("$$", "$")  # compose's escape for a literal $


def worker_environment(redis: RedisServer, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPLORA_")}
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    env.update(
        ESPLORA_HOME=str(tmp_path / "home"), ESPLORA_DATABASE_URL=url, ESPLORA_BROKER_URL=redis.url
    )
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `celery`, as in the image
    return env


def start_worker(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [str(BIN / "esplora"), "worker", "--queues", "cpu", "--loglevel", "WARNING", *extra]
    with log.open("wb") as output:
        return subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_until_pinged(
    env: dict[str, str], node: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    ping = [tool("celery"), "--broker", env["ESPLORA_BROKER_URL"], "inspect", "ping"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the worker exited:\n{log.read_text()[-2000:]}"
        answered = subprocess.run([*ping, "-d", node, "--timeout", "1"], capture_output=True)
        if answered.returncode == 0:
            return
    raise TimeoutError(f"worker {node} never answered a ping:\n{log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown; past 20 s, kill the worker and its pool children (its own session)."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.mark.slow
def test_the_worker_health_check_passes_for_this_containers_worker_only(
    services: dict[str, Any], redis: RedisServer, tmp_path: Path
) -> None:
    check = health_check_command(services)
    env = worker_environment(redis, tmp_path)

    def health() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", check], env=env, capture_output=True, text=True, timeout=60
        )

    logs = tmp_path / "elsewhere.log", tmp_path / "here.log"
    elsewhere = start_worker(env, logs[0], "--name", "cpu@another-host")
    try:
        wait_until_pinged(env, "cpu@another-host", elsewhere, logs[0])
        assert health().returncode != 0  # a live worker on the queue, but another container's
        here = start_worker(env, logs[1])  # the default node name, cpu@<hostname>, as in compose
        try:
            wait_until_pinged(env, f"cpu@{socket.gethostname()}", here, logs[1])
            result = health()
            assert result.returncode == 0, result.stdout + result.stderr
        finally:
            stop(here)
    finally:
        stop(elsewhere)
