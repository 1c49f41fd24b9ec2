"""What a search runs with, checked before Ray starts and before anything is written: its
name and directories, the MLflow experiment and tracking server, the Ray address, the
retries and the resources a trial asks for. Every probe of a server has a stated bound
(``PROBE_S``); each failure is a ``RunCheckError``: one line, exit 2, nothing left behind."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from dejavu_tune.cli import check_output_dir
from dejavu_tune.errors import DejavuError

__all__ = ["RunCheckError", "PROBE_S", "NAME_MAX", "EXPERIMENT_MAX", "MAX_FAILURES_MAX",
           "check_name", "check_experiment", "check_max_failures",
           "check_tracking_uri", "check_address", "check_local_resources", "probe_tcp",
           "GRPC_HELLO", "POSTGRES_HELLO"]

# Seconds one probe of a server may take (a TCP connection, an HTTP answer): a server that
# is down is refused at once; one that never answers is given up on after this.
PROBE_S = float(os.environ.get("DEJAVU_PROBE_TIMEOUT_S", "10"))
NAME_MAX = 100  # a search name is one directory; MLflow shows it as the parent run's name
EXPERIMENT_MAX = 256  # MLflow's experiments.name column
MAX_FAILURES_MAX = 100  # Ray reads a negative count as retrying forever
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# MLflow's tracking stores by URI scheme (a database's driver may follow a "+")
_DATABASES = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
_SCHEMES = ("a path", "file", "sqlite", "http", "https", *_DATABASES, "databricks")


class RunCheckError(DejavuError, ValueError):
    """A flag or what it names cannot work; the message says what is allowed."""


def check_name(name: str, flag: str = "--name") -> str:
    """A search name is one path component under the storage path: nothing outside it can
    ever be written through it."""
    if not isinstance(name, str) or len(name) > NAME_MAX or not _NAME.fullmatch(name) \
            or name in (".", ".."):
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise RunCheckError(f"{flag} {shown!r} is not allowed: expected 1 to {NAME_MAX} "
                            "letters, digits, '.', '_' or '-', starting with a letter or digit "
                            f"(one directory inside --storage-path; got {len(name)} characters)")
    return name


def check_experiment(name: str) -> str:
    if not name.strip() or len(name) > EXPERIMENT_MAX or any(c in name for c in "\n\r\t\0"):
        raise RunCheckError(f"--experiment {name[:60]!r} is not allowed: expected an MLflow "
                            f"experiment name of 1 to {EXPERIMENT_MAX} characters, not blank, "
                            "on one line")
    return name


def check_max_failures(count: int) -> int:
    if not 0 <= count <= MAX_FAILURES_MAX:
        raise RunCheckError(f"--max-failures {count} is not allowed: expected 0 to "
                            f"{MAX_FAILURES_MAX} retries of a failed trial")
    return count


# What a server of each protocol answers first, so that a port which accepts connections
# and never speaks is told from a working server within the bound: gRPC (Ray) answers the
# HTTP/2 preface with its SETTINGS; PostgreSQL answers an SSL request with one byte;
# MySQL greets first.
GRPC_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
POSTGRES_HELLO = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
_HELLOS = {"postgresql": POSTGRES_HELLO, "mysql": b""}


def probe_tcp(host: str, port: int, what: str, timeout: float = PROBE_S,
              hello: bytes | None = None) -> None:
    """A TCP connection to ``host:port`` within ``timeout`` seconds (and, with ``hello``,
    the server's first bytes in answer to it), or a ``RunCheckError`` naming ``what`` was
    probed and what to check."""
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            if hello is None:
                return
            conn.settimeout(max(0.1, timeout - (time.monotonic() - start)))
            conn.sendall(hello)
            if conn.recv(1):
                return
            why = f"it closed the connection after {time.monotonic() - start:.1f} s"
    except TimeoutError:
        why = f"no answer within {timeout:g} s"
    except OSError as exc:
        why = f"{exc.strerror or exc} after {time.monotonic() - start:.1f} s"
    raise RunCheckError(f"{what} {host}:{port} cannot be reached ({why}): check that the server "
                        "runs and that this machine can connect to it")


def check_tracking_uri(uri: str | None, timeout: float = PROBE_S) -> None:
    """The tracking URI's scheme is one MLflow stores runs in, and its server (or database
    host) answers within ``timeout`` seconds."""
    if uri is None:
        return
    from dejavu_tune.tracking.runs import redact

    shown = redact(uri)
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0].lower()
    if not parts.scheme:  # a local path: MLflow keeps a file store there
        check_output_dir(Path(uri), f"--tracking-uri {shown}")
        return
    if scheme in ("file", "sqlite"):
        # sqlite:///rel.db is relative, sqlite:////abs.db absolute; the file is MLflow's to make
        local = Path(parts.path[1:]).parent if scheme == "sqlite" else Path(parts.path)
        check_output_dir(local, f"--tracking-uri {shown}")
        return
    if scheme in ("http", "https"):
        _probe_http(uri, shown, timeout)
        return
    if scheme in _DATABASES:
        if not parts.hostname:
            raise RunCheckError(f"--tracking-uri {shown}: no database host: expected "
                                f"{scheme}://USER:PASSWORD@HOST:PORT/DATABASE")
        probe_tcp(parts.hostname, parts.port or _DATABASES[scheme],
                  f"--tracking-uri {shown}: the database", timeout, _HELLOS.get(scheme))
        return
    if scheme == "databricks":
        return  # its workspace and credentials come from the Databricks profile
    raise RunCheckError(f"--tracking-uri {shown}: scheme {parts.scheme!r} is not allowed: "
                        "expected " + ", ".join(_SCHEMES))


def _probe_http(uri: str, shown: str, timeout: float) -> None:
    """MLflow's server answers ``/health`` with 200; anything else is not an MLflow server
    this search can use."""
    import requests

    url = uri.rstrip("/") + "/health"
    start = time.monotonic()
    try:
        answer = requests.get(url, timeout=(timeout, timeout), allow_redirects=False)
    except requests.exceptions.Timeout:
        why = f"no answer within {timeout:g} s"
    except requests.exceptions.RequestException as exc:
        errno = re.search(r"\[Errno -?\d+\] [^'\"()]+", str(exc))
        why = (f"{errno.group(0).strip() if errno else type(exc).__name__} after "
               f"{time.monotonic() - start:.1f} s")
    else:
        if answer.status_code == 200:
            return
        why = f"{url.replace(uri.rstrip('/'), shown.rstrip('/'))} answered HTTP {answer.status_code}"
    raise RunCheckError(f"--tracking-uri {shown} cannot be used ({why}): expected a running `mlflow server` (check its address, and that "
                        "this machine can reach it)")


def check_address(address: str | None, timeout: float = PROBE_S) -> None:
    """``--address`` is ``auto``, ``HOST:PORT`` (a cluster's GCS, e.g. :6379) or
    ``ray://HOST:PORT`` (Ray Client, e.g. :10001), and that port answers within
    ``timeout`` seconds; ``auto`` is the cluster ``ray start`` runs on this machine."""
    if address is None or address in ("local", "auto"):
        return
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in rest:
        raise RunCheckError(f"--address {address!r} is not allowed: expected auto, HOST:PORT "
                            "(e.g. 10.0.0.5:6379, the head's `ray start --head` port) or "
                            "ray://HOST:PORT (Ray Client, e.g. port 10001)")
    probe_tcp(host, int(port), f"--address {address}: the Ray "
              + ("client server" if client else "cluster"), timeout, GRPC_HELLO)


def check_local_resources(cpu: float, gpu: float) -> None:
    """A local Ray has this machine's CPUs and the GPUs PyTorch sees: a trial asking for
    more could never be scheduled, and would wait forever."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cpu > (cpus or 1):
        raise RunCheckError(f"resources.cpu={cpu:g} is not allowed here: this machine has "
                            f"{cpus} CPU(s) for the local Ray: expected at most {cpus} "
                            "(--cpus-per-trial), or --address of a cluster with larger nodes")
    if gpu > 0:
        import torch

        gpus = torch.cuda.device_count()
        if gpu > gpus:
            raise RunCheckError(
                f"resources.gpu={gpu:g} is not allowed here: this machine has {gpus} GPU(s) "
                "PyTorch can use (CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): expected "
                + (f"at most {gpus}" if gpus else "0 (--gpus-per-trial 0)")
                + ", or --address of a cluster with GPU nodes")
