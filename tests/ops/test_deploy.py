"""deploy/: what can be checked without Docker, systemd as PID 1 or a cluster. The compose file
and manifests parse and name real commands and the configured port; the units pass
`systemd-analyze verify` (where installed); the image's entrypoint command runs here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from service import livewatch as run_livewatch

from monitor.cli import main
from monitor.config.loader import load_config
from monitor.config.values import ENV_VAR, env_var_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent
ENV = {"LW_WEBHOOK_SECRET": "whsec_x", "LW_REDIS_URL": "redis://redis:6379/0",
       "LW_DESK_TOKEN": "desk-token-0123456789", "LW_WALL_TOKEN": "wall-token-0123456789",
       "LW_CONSOLE_KEY": "a-console-signing-key-of-32-chars-or-more"}
PORT = 9108
CONSOLE_PORT = 9109


def commands() -> set[str]:
    return set(main.list_commands(click.Context(main)))


def livewatch(*args: str) -> subprocess.CompletedProcess[str]:
    return run_livewatch(*args, env={"PATH": "/usr/bin:/bin", **ENV})


def test_the_deploy_config_is_valid_and_listens_on_the_port() -> None:
    config = load_config(DEPLOY / "livewatch.yaml", env=ENV)
    assert config.http.address == ("0.0.0.0", PORT)
    assert config.redis.url == ENV["LW_REDIS_URL"]
    local = load_config(DEPLOY / "livewatch.yaml",
                        env={**ENV, "LW_HTTP_LISTEN": "127.0.0.1:9200"})
    assert local.http.address == ("127.0.0.1", 9200)
    assert config.console.address == ("0.0.0.0", CONSOLE_PORT)
    assert {t.name: t.scope for t in config.console.tokens} == {"desk": "admin", "wall": "read"}


def test_env_example_names_every_variable_the_config_needs() -> None:
    needed = {ref.group(1) for ref in ENV_VAR.finditer((DEPLOY / "livewatch.yaml").read_text())
              if ref.group(2) is None}  # no `:-default`: the environment must set it
    example = {line.split("=")[0] for line in (DEPLOY / "env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert needed <= example


def dockerfile() -> tuple[list[str], dict[str, Any]]:
    lines = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    instructions = [line.strip() for line in lines if line.strip()
                    and not line.strip().startswith("#")]
    found: dict[str, Any] = {}
    for line in instructions:
        word, _, rest = line.partition(" ")
        found.setdefault(word, []).append(rest.strip())
    return instructions, found


def test_dockerfile_is_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    _, found = dockerfile()
    assert len(found["FROM"]) >= 2 and all("slim" in f for f in found["FROM"])
    assert found["USER"][-1].split(":")[0] not in ("root", "0")
    (healthcheck,) = found["HEALTHCHECK"]
    assert f"127.0.0.1:{PORT}/healthz" in healthcheck
    assert found["EXPOSE"] == [f"{PORT} {CONSOLE_PORT}"]
    for copy in found["COPY"]:
        if "--from" not in copy:
            for source in copy.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_the_image_entrypoint_command_runs() -> None:
    _, found = dockerfile()
    entrypoint, cmd = json.loads(found["ENTRYPOINT"][-1]), json.loads(found["CMD"][-1])
    assert entrypoint == ["livewatch"]
    assert cmd[0] in commands() and cmd[cmd.index("--config") + 1] == \
        "/etc/livewatch/livewatch.yaml"
    assert "COPY deploy/livewatch.yaml /etc/livewatch/livewatch.yaml" in dockerfile()[0]
    script = Path(sys.executable).parent / "livewatch"  # what `pip install .` puts on PATH
    assert subprocess.run([str(script), "--help"], capture_output=True,
                          timeout=60).returncode == 0
    assert subprocess.run([str(script), cmd[0], "--help"], capture_output=True,
                          timeout=60).returncode == 0
    checked = livewatch("check-config", str(DEPLOY / "livewatch.yaml"))
    assert checked.returncode == 0, checked.stderr


def test_compose_file() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and \
        redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.startswith("redis-data:") for v in redis["volumes"])
    assert "redis-data" in compose["volumes"]
    roles = {"livewatch": "run", "poller": "poller", "worker": "worker", "console": "console"}
    for name, command in roles.items():
        service = services[name]
        assert service["command"][0] == command and command in commands()
        assert service["environment"]["LW_HTTP_LISTEN"].endswith(f":{PORT}")
        assert service["volumes"][0].endswith(":/etc/livewatch/livewatch.yaml:ro")
        assert (DEPLOY / service["volumes"][0].split(":")[0]).exists()
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "profiles" not in services["livewatch"]
    assert services["poller"]["profiles"] == services["worker"]["profiles"] == \
        services["console"]["profiles"] == ["scale"]
    assert services["livewatch"]["ports"] == [f"127.0.0.1:{PORT}:{PORT}",
                                              f"127.0.0.1:{CONSOLE_PORT}:{CONSOLE_PORT}"]
    assert services["console"]["ports"] == [f"127.0.0.1:{CONSOLE_PORT}:{CONSOLE_PORT}"]
    assert (ROOT / services["livewatch"]["build"]["context"].replace("..", ".")).exists()


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests() -> None:
    docs = manifests()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    (config_map,) = by_kind["ConfigMap"]
    assert config_map["data"]["livewatch.yaml"] == (DEPLOY / "livewatch.yaml").read_text()
    (secret,) = by_kind["Secret"]
    needed = set(env_var_names(config_map["data"]["livewatch.yaml"]))
    deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
    assert set(deployments) == {"livewatch-poller", "livewatch-worker", "livewatch-console"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"][0] == name.removeprefix("livewatch-") in commands()
        env = {e["name"] for e in container.get("env", [])}
        assert needed - {"LW_HTTP_LISTEN", "LW_CONSOLE_LISTEN"} <= set(secret["stringData"])
        assert "LW_HTTP_LISTEN" in env
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["http"] == PORT
        if name == "livewatch-console":
            assert ports["console"] == CONSOLE_PORT and "LW_CONSOLE_LISTEN" in env
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert pod["securityContext"]["runAsNonRoot"] is True
        mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
        assert mount["mountPath"] + "/livewatch.yaml" == container["args"][2]
        assert pod["terminationGracePeriodSeconds"] > 20  # workers.shutdown_timeout
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    assert services["livewatch-console"]["spec"]["ports"][0]["targetPort"] == "console"


def test_kustomization_builds() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert all((DEPLOY / "k8s" / r).exists() for r in kustomization["resources"])
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed")
    built = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s")], capture_output=True,
                           text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(built.stdout)]
    assert kinds.count("Deployment") == 3


UNITS = ["livewatch.service", "livewatch-poller@.service", "livewatch-worker@.service",
         "livewatch-console.service"]
HARDENING = ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
             "Restart=on-failure", "EnvironmentFile=/etc/livewatch/env", "KillSignal=SIGTERM",
             "ExecReload=/bin/kill -HUP $MAINPID"]


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_unit_content(unit: str) -> None:
    text = (DEPLOY / "systemd" / unit).read_text()
    for directive in HARDENING:
        assert directive in text.splitlines(), directive
    assert re.search(r"^StateDirectory=\S+", text, re.M)
    assert int(re.search(r"^TimeoutStopSec=(\d+)", text, re.M).group(1)) > 20  # type: ignore[union-attr]
    command = re.search(r"^ExecStart=\S+ (\S+)", text, re.M).group(1)  # type: ignore[union-attr]
    assert command in commands()
    if "@" in unit:
        assert "Environment=LW_HTTP_LISTEN=127.0.0.1:%i" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify(unit: str, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "livewatch"
    text = (DEPLOY / "systemd" / unit).read_text().replace("/opt/livewatch/bin/livewatch",
                                                           str(script))
    (tmp_path / unit).write_text(text)
    target = tmp_path / unit
    if unit.endswith("@.service"):  # verify an instance of the template
        target = tmp_path / unit.replace("@.", "@9109.")
        target.symlink_to(tmp_path / unit)
    result = subprocess.run(["systemd-analyze", "verify", str(target)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "not executable" not in result.stderr, \
        result.stderr
