"""The layers of docs/architecture.md, checked on the imports themselves (parsed, not run):
the method trains without the search service, one package each talks to Ray and to
MLflow, and no two modules import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dejavu_tune"
# the method and its training: they run without the search service
LOWER = ("method", "models", "data", "tasks", "train")
SERVICE = ("dejavu_tune.search", "dejavu_tune.raytune", "dejavu_tune.tracking",
           "dejavu_tune.bench", "dejavu_tune.trainables", "trainables", "ray", "optuna",
           "mlflow")
FOUNDATIONS = {"__init__", "config", "errors", "plugins", "cli"}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top, inside functions and for type checks."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from dejavu_tune.x import y` may import the module dejavu_tune.x.y
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _sources() -> dict[str, Path]:
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "trainables").rglob("*.py")]
    return {_module(p): p for p in files}


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_method_and_its_training_import_nothing_of_the_search_service():
    broken = {}
    for name, path in _sources().items():
        if _under(name, tuple(f"dejavu_tune.{layer}" for layer in LOWER)) or name in {
                f"dejavu_tune.{f}" for f in FOUNDATIONS}:
            bad = sorted(i for i in _imports(path) if _under(i, SERVICE))
            if bad:
                broken[name] = bad
    assert not broken, broken


def test_the_method_models_data_and_tasks_import_nothing_of_training():
    broken = {name: sorted(i for i in _imports(path) if _under(i, ("dejavu_tune.train",)))
              for name, path in _sources().items()
              if _under(name, tuple(f"dejavu_tune.{layer}" for layer in LOWER[:-1]))}
    assert not {k: v for k, v in broken.items() if v}, broken


def test_the_outcome_maths_imports_no_service_and_no_framework():
    # records, statistics and verdicts are pure: the search, the report and the
    # simulations of bench verdicts decide through the same code
    pure = ("dejavu_tune.outcome",)
    forbidden = (*SERVICE, "dejavu_tune.method", "dejavu_tune.models", "dejavu_tune.data",
                 "dejavu_tune.tasks", "dejavu_tune.train", "torch")
    broken = {name: sorted(i for i in _imports(path) if _under(i, forbidden))
              for name, path in _sources().items() if _under(name, pure)}
    assert not {k: v for k, v in broken.items() if v}, broken
    assert len([n for n in _sources() if _under(n, pure)]) >= 4  # the package is there


def test_the_library_never_imports_the_trainables_it_runs():
    # the entry point names the trainable (search.trial_context.TRAINABLE); the trainable
    # imports the library, never the other way round
    users = sorted(name for name, path in _sources().items()
                   if _under(name, ("dejavu_tune",))
                   and any(_under(i, ("trainables", "dejavu_tune.trainables"))
                           for i in _imports(path)))
    assert not users, users


def test_only_raytune_imports_ray_and_only_tracking_imports_mlflow():
    # bench.peer is the stack a user wires by hand from Ray and MLflow directly: the
    # reference the service's own cost is measured against
    for library, owner in (("ray", "dejavu_tune.raytune"), ("mlflow", "dejavu_tune.tracking")):
        users = sorted(name for name, path in _sources().items()
                       if not _under(name, (owner, "dejavu_tune.bench.peer"))
                       and any(_under(i, (library,)) for i in _imports(path)))
        assert not users, (library, users)


def test_no_import_circle():
    # deferred imports (inside functions) and type-checking ones count too: a circle
    # hidden in a function still ties the two modules' changes together
    sources = _sources()
    graph = {name: {i for i in _imports(path) if i in sources and i != name}
             for name, path in sources.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(
                    stack[stack.index(nxt):] + [nxt]) if nxt in stack else nxt)
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_top_level_holds_foundations_and_commands_only():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 8, modules
    commands = {"cluster_search", "__main__"}  # report, search, train, bench: packages
    assert set(modules) <= FOUNDATIONS | commands, modules


# What an MLflow run entity and a Tune result hold: read only inside their adapters, which
# hand the rest of the package our own types (tracking.runs.RunRow, raytune.TrialResult).
_MLFLOW_FIELDS = {("info", "run_id"), ("info", "run_name"), ("info", "status"),
                  ("info", "start_time"), ("info", "end_time"), ("info", "experiment_id"),
                  ("data", "tags"), ("data", "params"), ("data", "metrics")}
_TUNE_READS = {"metrics_dataframe", "result.json", "progress.csv", "last_result"}


def _reads(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and (node.value.attr, node.attr) in _MLFLOW_FIELDS):
            found.add(f"mlflow:.{node.value.attr}.{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr in _TUNE_READS:
            found.add(f"tune:.{node.attr}")
        elif isinstance(node, ast.Constant) and node.value in _TUNE_READS:
            found.add(f"tune:{node.value}")
    return found


def test_mlflow_entities_and_tunes_rows_are_read_only_in_their_adapters():
    broken = {}
    for name, path in _sources().items():
        bad = {r for r in _reads(path)
               if (r.startswith("mlflow:") and not _under(name, ("dejavu_tune.tracking",)))
               or (r.startswith("tune:") and not _under(name, ("dejavu_tune.raytune",)))}
        if bad:
            broken[name] = sorted(bad)
    assert not broken, broken
    # the check sees what it looks for: the adapters themselves read both
    assert "mlflow:.info.run_id" in _reads(PACKAGE / "tracking" / "runs.py")
    assert "tune:.metrics_dataframe" in _reads(PACKAGE / "raytune" / "trial_results.py")


def test_every_test_file_has_its_own_name():
    # pytest imports the test folders' files by their base names (no __init__.py): two
    # files of one name in different folders cannot both be collected
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert len(names) > 50 and len(names) == len(set(names)), sorted(
        n for n in set(names) if names.count(n) > 1)
