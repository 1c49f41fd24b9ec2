"""``python -m dejavu_tune.bench bounds``: how long the search takes to refuse a tracking
server or Ray address that cannot be used, next to its own start-up on good input.

Every server is on loopback and made here: a port nothing listens on (refused at once),
and one that accepts connections and never sends a byte (127.0.0.2, so that Ray does not
rewrite it to the machine's own address). Each case is ``--dry-run`` of the default space
in a fresh process, ``--repeats`` times; the table gives the median and the range, and the
start-up (the same command with no server named) to subtract."""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run", "silent_port", "refused_port"]


@contextmanager
def silent_port(host: str = "127.0.0.2") -> Iterator[int]:
    """A port on ``host`` that accepts every connection and answers nothing."""
    server = socket.socket()
    server.bind((host, 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def refused_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]  # closed on return: nothing listens there


def _time(args: list[str], storage: Path) -> tuple[float, int, str]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "dejavu_tune.search", "--dry-run",
                           "--storage-path", str(storage), *args],
                          capture_output=True, text=True, timeout=600)
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    return time.monotonic() - start, proc.returncode, last


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bounds", help="seconds to refuse a tracking server or Ray address "
                                      "that refuses or never answers")
    p.add_argument("--repeats", type=int, default=3, help="runs of each case")


def run(args: argparse.Namespace) -> int:
    from dejavu_tune.bench.inputs import at_least
    from dejavu_tune.search.run_checks import PROBE_S

    at_least(1, repeats=args.repeats)
    repeats = args.repeats

    with silent_port() as silent, tempfile.TemporaryDirectory() as tmp:
        refused = refused_port()
        cases = [("start-up, no server named (exit 0)", []),
                 ("--tracking-uri, port refused", ["--tracking-uri",
                                                   f"http://127.0.0.1:{refused}"]),
                 ("--tracking-uri, never answers", ["--tracking-uri",
                                                    f"http://127.0.0.2:{silent}"]),
                 ("--tracking-uri postgresql://, never answers",
                  ["--tracking-uri", f"postgresql://u:p@127.0.0.2:{silent}/db"]),
                 ("--address, port refused", ["--address", f"127.0.0.1:{refused}"]),
                 ("--address, never answers", ["--address", f"127.0.0.2:{silent}"])]
        print(f"probe bound (DEJAVU_PROBE_TIMEOUT_S): {PROBE_S:g} s; {repeats} run(s) each, "
              "a fresh process per run")
        print("| case | exit | seconds to the answer, median (min-max) | last line |")
        print("|---|---|---|---|")
        for label, args in cases:
            runs = [_time(args, Path(tmp) / "runs") for _ in range(repeats)]
            walls = [w for w, _, _ in runs]
            codes = sorted({c for _, c, _ in runs})
            print(f"| {label} | {','.join(map(str, codes))} | {statistics.median(walls):.1f} "
                  f"({min(walls):.1f}-{max(walls):.1f}) | {runs[-1][2][:110]} |", flush=True)
    return 0
