"""``search.system_metrics`` and its interval: checked where the space is read, before Ray
starts. A package that is not installed is simulated the way Python itself spells it: a
``None`` in ``sys.modules`` makes its import fail and ``find_spec`` find nothing."""

import sys
from pathlib import Path

import pytest
import yaml

from dejavu_tune.search.preflight import check_system_metrics
from dejavu_tune.search.space import Resources, SearchSettings, SpaceError
from dejavu_tune.search.space_file import parse_space
from dejavu_tune.tracking.system_metrics import interval

ROOT = Path(__file__).resolve().parents[3]
EXTRA = "pip install 'dejavu-tune[system-metrics]'"


def _raw(**search):
    raw = yaml.safe_load((ROOT / "search_spaces" / "default.yaml").read_text())
    raw["search"].update(search)
    return raw


def test_yaml_on_and_off_mean_on_and_off_and_auto_is_the_default():
    assert SearchSettings().system_metrics == "auto"
    for text, mode in (("on", "on"), ("off", "off"), ("auto", "auto")):
        # YAML 1.1 reads a bare on/off as true/false
        given = yaml.safe_load(f"system_metrics: {text}")
        assert parse_space(_raw(**given), "s.yaml").search.system_metrics == mode


@pytest.mark.parametrize("setting, message", [
    ({"system_metrics": "always"}, "s.yaml: search.system_metrics='always' is not allowed: "
                                   "expected one of auto, on, off"),
    ({"system_metrics": 1}, "search.system_metrics=1 is not allowed: expected one of auto, "
                            "on, off"),
    ({"system_metrics_interval": 0}, "search.system_metrics_interval=0 is not allowed: "
                                     "expected a positive number of seconds"),
    ({"system_metrics_interval": "10s"}, "search.system_metrics_interval='10s' is not "
                                         "allowed"),
])
def test_a_bad_value_says_what_is_allowed(setting, message):
    with pytest.raises(SpaceError) as err:
        parse_space(_raw(**setting), "s.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_on_without_psutil_names_the_extra_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.raises(SpaceError) as err:
        parse_space(_raw(system_metrics="on"), "s.yaml")
    assert str(err.value) == (
        "s.yaml: search.system_metrics: 'on' needs psutil, which is not installed: "
        f"{EXTRA} (or set it to auto or off)")
    # auto goes without: the trials log none
    assert parse_space(_raw(system_metrics="auto"), "s.yaml").search.system_metrics == "auto"
    assert interval("auto", 10.0) is None


def test_on_for_gpu_trials_needs_nvidia_ml_py_too(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    check_system_metrics("s.yaml", SearchSettings(system_metrics="on"), Resources(gpu=0))
    with pytest.raises(SpaceError, match=r"'on' needs nvidia-ml-py, which is not installed: "
                                         r"pip install 'dejavu-tune\[system-metrics\]'"):
        check_system_metrics("s.yaml", SearchSettings(system_metrics="on"), Resources(gpu=1))
