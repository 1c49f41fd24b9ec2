"""A real PostgreSQL server, and the team tracking server of ``docker/docker-compose.yml``
run against it without Docker.

``PostgresServer`` initialises a database cluster in a directory of its own, listens on a
loopback port only, and can be stopped (``pg_ctl stop -m fast|immediate``) and started
again on the same data, like a database host that restarts. ``compose_server`` reads the
``mlflow`` service of the compose file and returns its command and environment exactly as
written there, with only what Docker would provide replaced by its local equivalent: the
``postgres`` service name and port by the loopback server, the named volume by a
directory, the container's port by a free one on 127.0.0.1 (where the compose file
publishes it by default).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from helpers.cluster import BIN, free_port, kill, wait_until

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "docker-compose.yml"


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server binaries installed from Debian's packages, else any
    ``initdb`` on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``, with ``env`` set."""

    def value(m: re.Match) -> str:
        name, op, word = m[1], m[2], m[3]
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {word}")
        return word or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", value, text)


class PostgresServer:
    """A PostgreSQL cluster on 127.0.0.1:``port``, with ``user`` owning ``database``.

    initdb refuses to run as root: as root, every server command runs as the ``postgres``
    user that Debian's package creates, in a directory that user owns."""

    def __init__(self, user: str, password: str, database: str):
        bindir = postgres_bindir()
        if bindir is None:
            raise FileNotFoundError("PostgreSQL's server binaries (Debian: apt-get install "
                                    "postgresql)")
        self.bin = bindir
        self.user, self.password, self.database = user, password, database
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="dejavu-pg-"))
        self.data = self.dir / "data"
        self._as = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-N", "--locale=C",
                  "--encoding=UTF8", "--auth-local=trust", "--auth-host=scram-sha-256")
        self.start()
        self._run("psql", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres",
                  "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                  "-c", f"CREATE ROLE {user} LOGIN PASSWORD '{password}'",
                  "-c", f"CREATE DATABASE {database} OWNER {user}")

    def _run(self, tool: str, *args: str) -> str:
        proc = subprocess.run([*self._as, str(self.bin / tool), *args], capture_output=True,
                              text=True, timeout=120, cwd=self.dir)
        assert proc.returncode == 0, f"{tool}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        return proc.stdout

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w",
                  "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m",
                        "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def compose_server(env: dict[str, str], postgres: PostgresServer, artifacts: Path,
                   port: int) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of the compose file's ``mlflow`` service, run here."""
    service = yaml.safe_load(COMPOSE.read_text())["services"]["mlflow"]
    argv = shlex.split(interpolate(service["command"], env))
    environment = {k: interpolate(str(v), env) for k, v in service["environment"].items()}
    store = urlsplit(environment["MLFLOW_BACKEND_STORE_URI"])
    # The compose network's name for the database service, on PostgreSQL's own port.
    assert (store.hostname, store.port) == ("postgres", 5432), store.netloc
    netloc = store.netloc.replace("@postgres:5432", f"@127.0.0.1:{postgres.port}")
    environment["MLFLOW_BACKEND_STORE_URI"] = urlunsplit(store._replace(netloc=netloc))
    volumes = dict(reversed(v.split(":", 1)) for v in service["volumes"])  # target -> name
    (published,) = service["ports"]
    container_port = interpolate(published, env).rsplit(":", 1)[1]
    local = {**{target: str(artifacts / name) for target, name in volumes.items()},
             container_port: str(port), "0.0.0.0": "127.0.0.1"}
    argv = [local.get(word, word) for word in argv]
    assert argv[0] == "mlflow", argv
    return [str(BIN / "mlflow"), *argv[1:]], environment


class ComposeTrackingServer:
    """The compose file's tracking server, on a real PostgreSQL, on 127.0.0.1."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        defaults = {"POSTGRES_PASSWORD": secrets.token_hex(24)}
        postgres_env = yaml.safe_load(COMPOSE.read_text())["services"]["postgres"]["environment"]
        settings = {k: interpolate(v, defaults) for k, v in postgres_env.items()}
        self.password = settings["POSTGRES_PASSWORD"]
        self.postgres = PostgresServer(settings["POSTGRES_USER"], self.password,
                                       settings["POSTGRES_DB"])
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.argv, self.environment = compose_server(defaults, self.postgres,
                                                     tmp / "volumes", self.port)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.tmp / "mlflow-server.log").open("a")
        self.proc = subprocess.Popen(self.argv, env={**os.environ, **self.environment},
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_until(self._healthy, 120, "the compose file's mlflow server")

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, (self.tmp / "mlflow-server.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def command_lines(self) -> list[str]:
        """The command lines of every process of the server's session (what `ps` shows)."""
        lines = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if os.getsid(int(proc.name)) == self.proc.pid:
                    lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except (OSError, ValueError):
                continue
        return lines

    def close(self) -> None:
        if self.proc is not None:
            kill(self.proc)
        self.postgres.close()
