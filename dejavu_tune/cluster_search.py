"""The search on a running Ray cluster: what ``ray submit`` runs on the head node.

    ray submit cluster.yaml dejavu_tune/cluster_search.py -- [--min-nodes N] SEARCH-ARGS

``ray up`` returns before the worker nodes have joined, so this waits until
``--min-nodes`` nodes are alive (the head counts), then runs
``python -m dejavu_tune.search SEARCH-ARGS --address auto``. The arguments are
checked first: a mistyped space fails at once, not after the wait.
"""

from __future__ import annotations

from dejavu_tune.cli import command_parser, run
from dejavu_tune.raytune import ray_adapter
from dejavu_tune.search.cli import main as search_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("cluster_search.py", __doc__)
    parser.add_argument("--min-nodes", type=int, default=1,
                        help="wait until this many Ray nodes are alive (the head included)")
    parser.add_argument("--wait-timeout", type=float, default=600.0,
                        help="seconds to wait for them before giving up")
    args, search_args = parser.parse_known_args(argv)
    if args.min_nodes < 1 or args.wait_timeout <= 0:
        parser.error("--min-nodes must be at least 1 and --wait-timeout positive")
    if "--address" in search_args:
        parser.error("--address: the search always joins the cluster it is submitted to")
    checked = search_main([*search_args, "--dry-run"])
    if checked != 0 or "--dry-run" in search_args:
        return checked
    alive = ray_adapter.wait_for_nodes(args.min_nodes, args.wait_timeout)  # RayWaitError: 2
    print(f"{alive} Ray node(s) alive; starting the search", flush=True)
    return search_main([*search_args, "--address", "auto"])


if __name__ == "__main__":
    raise SystemExit(run(main))
