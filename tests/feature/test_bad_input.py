"""Bad input, generated: every malformed search space or command line ends with exit
status 2 and a one-line message naming the problem, never a traceback, never Ray."""

from __future__ import annotations

import copy
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dejavu_tune.raytune import ray_adapter
from dejavu_tune.search import cli as search

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "search_spaces" / "default.yaml").read_text())
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)
# Values no configuration key, parameter spec or setting accepts where a number, a name
# or a flag is expected.
wrong = st.one_of(st.lists(scalars, min_size=1, max_size=3),
                  st.dictionaries(st.sampled_from(["x", "low", "type"]), scalars,
                                  min_size=1, max_size=2))


def _paths(node, prefix=()):
    """Every (path, value) of a YAML document's scalar leaves."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))
    else:
        yield prefix, node


LEAVES = [path for path, _ in _paths(DEFAULT)]


def _get(node, path):
    for key in path:
        node = node[key]
    return node


def _mappings(node, prefix=()):
    if isinstance(node, dict):
        yield prefix
        for key, value in node.items():
            yield from _mappings(value, (*prefix, key))


MAPPING_PATHS = list(_mappings(DEFAULT))


@pytest.fixture
def no_ray(monkeypatch):
    """Fails the test if the search gets as far as starting Ray."""
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for bad input")

    monkeypatch.setattr(ray_adapter, "start_ray", refuse)


def _run(capsys, argv) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = search.main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


def _run_space(tmp_path, capsys, raw) -> tuple[int, str]:
    """The search on ``raw`` written as a space file, without --dry-run: bad input must
    stop before Ray (``no_ray``)."""
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(raw, sort_keys=False))  # order matters for `when`
    return _run(capsys, ["--space", str(space), "--storage-path", str(tmp_path)])


def _assert_one_line_error(code, err, argv):
    assert code == 2, (code, err, argv)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err


@SETTINGS
@given(document=documents)
def test_any_yaml_document_is_accepted_or_refused_in_one_line(tmp_path, capsys, no_ray,
                                                              document):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(document))
    code, err = _run(capsys, ["--space", str(space), "--storage-path", str(tmp_path),
                              "--dry-run"])
    if code != 0:
        _assert_one_line_error(code, err, document)
    else:  # accepted: then it named nothing that is not a real section or key
        assert not _unknown_keys(document), (document, _unknown_keys(document))


@SETTINGS
@given(data=st.data())
def test_a_wrong_value_anywhere_in_the_default_space_is_refused(tmp_path, capsys, no_ray,
                                                                data):
    raw = copy.deepcopy(DEFAULT)
    path = data.draw(st.sampled_from(LEAVES), label="path")
    value = data.draw(wrong, label="value")
    _get(raw, path[:-1])[path[-1]] = value
    code, err = _run_space(tmp_path, capsys, raw)
    _assert_one_line_error(code, err, (path, value))
    assert ".".join(str(p) for p in path[1:2]) in err or str(path[-1]) in err, (path, err)
    assert not list(tmp_path.glob("*/search.json"))  # nothing was started or recorded


@SETTINGS
@given(data=st.data())
def test_an_unknown_key_anywhere_in_the_default_space_is_refused(tmp_path, capsys, no_ray,
                                                                 data):
    raw = copy.deepcopy(DEFAULT)
    where = data.draw(st.sampled_from(MAPPING_PATHS), label="where")
    key = data.draw(st.from_regex(r"[a-z]{3,8}_typo", fullmatch=True), label="key")
    _get(raw, where)[key] = 1
    code, err = _run_space(tmp_path, capsys, raw)
    _assert_one_line_error(code, err, (where, key))
    assert key in err


FLAGS = ["--num-samples", "--max-concurrent", "--seed", "--grace-period",
         "--reduction-factor", "--cpus-per-trial", "--gpus-per-trial"]


@SETTINGS
@given(flag=st.sampled_from(FLAGS),
       value=st.one_of(st.text(min_size=1, max_size=6).filter(
           lambda s: not s.startswith("-") and not _number(s)),
           st.sampled_from(["-1", "-0.5", "1e999", "nan"])))
def test_a_bad_flag_value_is_refused_in_one_line(tmp_path, capsys, no_ray, flag, value):
    code, err = _run(capsys, [flag, value, "--storage-path", str(tmp_path)])
    _assert_one_line_error(code, err, (flag, value))
    assert flag in err or flag.lstrip("-").replace("-", "_") in err or \
        flag.lstrip("-").replace("-per-trial", "").rstrip("s") in err, err


def _config_paths() -> set[str]:
    """Every dotted key ``--set`` may name: the training configuration's leaves and the
    search's, resources' and CRM stage's settings."""
    import dataclasses

    from dejavu_tune.config import TrainConfig
    from dejavu_tune.search.space import Resources, SearchSettings
    from dejavu_tune.train.crm_store import PretrainSettings

    def leaves(cls, prefix):
        for f in dataclasses.fields(cls):
            sub = typing.get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(sub):
                yield from leaves(sub, f"{prefix}{f.name}.")
            else:
                yield prefix + f.name

    return ({*leaves(TrainConfig, "")} | {f"search.{k}" for k in leaves(SearchSettings, "")}
            | {f"resources.{k}" for k in leaves(Resources, "")}
            | {f"crm_pretrain.{k}" for k in leaves(PretrainSettings, "")})


CONFIG_PATHS = _config_paths()
# keys near the real ones as well as random ones: a real key with a made-up tail, a real
# section with a made-up key, a leaf of one section under another
near_keys = st.one_of(
    st.from_regex(r"[a-z]{2,6}(\.[a-z]{2,6}){0,2}", fullmatch=True),
    st.builds(lambda k, tail: f"{k}.{tail}", st.sampled_from(sorted(CONFIG_PATHS)),
              st.from_regex(r"[a-z]{1,5}", fullmatch=True)),
    st.builds(lambda k, tail: f"{k.rsplit('.', 1)[0]}.{tail}_x",
              st.sampled_from(sorted(p for p in CONFIG_PATHS if "." in p)),
              st.from_regex(r"[a-z]{1,5}", fullmatch=True)))


def test_the_config_paths_are_the_known_ones():
    assert {"optim.epochs", "dejavu.crm.kind", "search.num_samples", "resources.gpu",
            "crm_pretrain.iterations", "seed"} <= CONFIG_PATHS
    assert "optim" not in CONFIG_PATHS and "optim.epochs.x" not in CONFIG_PATHS



def test_an_accepted_document_names_only_real_keys():
    assert _unknown_keys(None) == [] and _unknown_keys({"search": None}) == []
    assert _unknown_keys({"fixed": {"optim": {"epochs": 2}}, "search": {"num_samples": 3},
                          "params": {"optim.lr": {"type": "float"}}}) == []
    assert _unknown_keys({"fixed": {"optim": {"epochz": 2}}, "searhc": {},
                          "params": {"optim.lrr": {}}}) == ["optim.epochz", "searhc",
                                                            "optim.lrr"]

@SETTINGS
@given(key=near_keys, value=st.text(max_size=8))
def test_a_set_override_of_no_configuration_key_is_refused_in_one_line(tmp_path, capsys,
                                                                       no_ray, key, value):
    code, err = _run(capsys, ["--set", f"{key}={value}", "--storage-path", str(tmp_path),
                              "--dry-run"])
    if key not in CONFIG_PATHS:
        _assert_one_line_error(code, err, (key, value))
    elif code != 0:
        _assert_one_line_error(code, err, (key, value))


SECTIONS = {"fixed": "", "search": "search.", "resources": "resources.",
            "crm_pretrain": "crm_pretrain.", "params": None}


def _unknown_keys(document) -> list[str]:
    """The keys of a space document that are no section, configuration key or setting
    (a parameter's name must be a configuration key; its spec is checked elsewhere)."""
    if document is None or document == {}:
        return []
    if not isinstance(document, dict):
        return [repr(document)]
    unknown = []
    for section, body in document.items():
        if section not in SECTIONS:
            unknown.append(str(section))
        elif isinstance(body, dict) and section == "params":
            unknown += [str(name) for name in body if name not in CONFIG_PATHS]
        elif isinstance(body, dict):
            for path, _ in _paths(body):
                keys = [str(k) for k in path if isinstance(k, str)]
                dotted = [SECTIONS[section] + ".".join(keys[:i + 1]) for i in range(len(keys))]
                if keys and not CONFIG_PATHS & set(dotted):
                    unknown.append(dotted[-1])
    return unknown

def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_missing_lpips_weights_are_refused_before_ray_starts(tmp_path, capsys, no_ray,
                                                             monkeypatch):
    # the default space trains CRMs with LPIPS (gamma1 > 0): its weights are read first
    monkeypatch.setenv("DEJAVU_LPIPS_WEIGHTS", str(tmp_path / "no-such-alexnet.pth"))
    code, err = _run(capsys, ["--storage-path", str(tmp_path / "runs")])
    _assert_one_line_error(code, err, ("no-such-alexnet.pth",))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
