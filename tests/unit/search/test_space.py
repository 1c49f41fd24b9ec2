import math
import re
from pathlib import Path

import optuna
import pytest
import yaml

from dejavu_tune.search.space import Resources, SpaceError
from dejavu_tune.search.space_file import load_space, parse_space

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "search_spaces" / "default.yaml"


def _raw():
    return yaml.safe_load(DEFAULT.read_text())


def test_default_space_loads_and_every_sample_is_a_valid_config():
    space = load_space(DEFAULT)
    assert space.search.metric == "val_miou" and space.resources == Resources(cpu=1.0, gpu=0.0)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_kinds = set()
    for _ in range(60):
        trial = study.ask()
        space.define_by_run(trial)
        params = trial.params
        kind, crm = params["dejavu.redaction.kind"], params["dejavu.crm.kind"]
        seen_kinds.add(kind)
        # Conditional: a parameter exists only where it has meaning.
        assert ("dejavu.redaction.threshold" in params) == (kind == "random_blocks")
        assert ("dejavu.redaction.cutoff" in params) == (kind in ("lowpass", "highpass"))
        assert ("dejavu.redaction.band_low" in params) == (kind == "bandstop")
        assert ("dejavu.crm.stages" in params) == (crm == "crm_f")
        assert ("dejavu.crm.steps" in params) == (crm == "crm_r")
        cfg = space.trial_config(params)
        assert cfg.dejavu.redaction.kind == kind
        study.tell(trial, 0.0)
    assert len(seen_kinds) == 5


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["params"]["dejavu.crm.steps"].update(bogus=1),
     "params.dejavu.crm.steps.bogus: is not a known key"),
    (lambda r: r["params"]["dejavu.crm.stages"].update(low=30),
     "params.dejavu.crm.stages.low: 30 is above high=3: expected low <= high"),
    (lambda r: r["params"]["dejavu.crm.steps"].update(when={"dejavu.crm.depth": "crm_r"}),
     "params.dejavu.crm.steps.when.dejavu.crm.depth: is not a parameter defined above"),
    (lambda r: r["params"]["dejavu.redaction.kind"].update(choices=[]),
     "params.dejavu.redaction.kind.choices: [] is not allowed: expected a non-empty list"),
    (lambda r: r["params"]["dejavu.redaction.kind"].update(choices=["random_blocks", "blur"]),
     "params.dejavu.redaction.kind: dejavu.redaction.kind='blur' is not allowed: "
     "expected one of random_blocks, checkerboard, lowpass, highpass, bandstop"),
    (lambda r: r["params"]["dejavu.crm.stages"].update(high=9),
     "params.dejavu.crm.stages: dejavu.crm.stages=9 is not allowed: expected an integer "
     "between 1 and 4"),
    (lambda r: r["params"]["dejavu.loss.gamma"].update(low=0.0),
     "params.dejavu.loss.gamma.low: 0.0 is not allowed with log: true"),
    (lambda r: r["params"]["dejavu.crm.stages"].update(when={"dejavu.crm.kind": "crm_z"}),
     "params.dejavu.crm.stages.when.dejavu.crm.kind: 'crm_z' is never sampled"),
    (lambda r: r["params"].update({"dejavu.crm.widht": {"type": "int", "low": 8, "high": 16}}),
     "dejavu.crm.widht is not a configuration key"),
    (lambda r: r["params"]["dejavu.crm.kind"].update(type="choice"),
     "params.dejavu.crm.kind.type: 'choice' is not allowed: expected one of float, int"),
    (lambda r: r.update(serach={}), "serach: is not a known section"),
    (lambda r: r["search"].update(mode="maximise"), "search.mode: 'maximise' is not allowed"),
    (lambda r: r["search"].update(num_sample=3), "search.num_sample: is not a known key"),
    (lambda r: r["resources"].update(gpu=-1), "resources.gpu: -1 is not allowed"),
    (lambda r: r["resources"].update(gpu=1.5), "resources.gpu: 1.5 is not allowed: Ray shares"),
    (lambda r: r["fixed"].update(device="cuda"), "fixed.device: 'cuda' needs a GPU per trial"),
    (lambda r: r["fixed"]["optim"].update(epochs=0),
     "fixed: optim.epochs=0 is not allowed: expected an integer of 1 or more"),
    (lambda r: r.update(params=[1, 2]), "params: [1, 2] is not allowed: expected a mapping"),
    (lambda r: r.update(search="abc"), "search: 'abc' is not allowed: expected a mapping"),
    (lambda r: r["params"]["dejavu.crm.stages"].update(when="crm_f"),
     "params.dejavu.crm.stages.when: 'crm_f' is not allowed: expected a mapping"),
    (lambda r: r["search"].update(metric="val_mio"),
     "search.metric: 'val_mio' is not allowed for this task: expected one of val_miou"),
    (lambda r: r["params"]["dejavu.crm.stages"].update(type="float", low=1, high=2),
     "dejavu.crm.stages=1.5 is not allowed: expected an integer"),
    (lambda r: r["params"]["dejavu.redaction.band_low"].update(low=0.3, high=0.8),
     "params: the sampled combination"),
    (lambda r: r["fixed"]["data"].update(image_size=16),
     "data.image_size=16 is not allowed: expected at least 32 when dejavu.loss.gamma1 > 0"),
    (lambda r: r["fixed"].update(dejavu={"crm": {"weights": "nope/crm.pt"}}),
     "fixed.dejavu.crm.weights: 'nope/crm.pt' does not exist"),
])
def test_bad_spaces_name_file_key_path_and_allowed(mutate, message):
    raw = _raw()
    mutate(raw)
    with pytest.raises(SpaceError) as err:
        parse_space(raw, "space.yaml")
    text = str(err.value)
    assert text.startswith("space.yaml: ") and message in text
    assert "\n" not in text


def test_condition_must_refer_to_an_earlier_parameter():
    raw = {"params": {
        "dejavu.crm.stages": {"type": "int", "low": 1, "high": 4,
                              "when": {"dejavu.crm.kind": "crm_f"}},
        "dejavu.crm.kind": {"type": "categorical", "choices": ["crm_f", "crm_r"]},
    }}
    with pytest.raises(SpaceError, match=r"when.dejavu.crm.kind: is not a parameter defined "
                                         r"above: expected one of \(none defined yet\)"):
        parse_space(raw, "s.yaml")


def test_overrides_reach_fixed_search_and_resources():
    space = load_space(DEFAULT, {"optim.epochs": 2, "search.num_samples": 3,
                                 "resources.gpu": 0.5})
    assert space.base_config().optim.epochs == 2
    assert space.search.num_samples == 3 and space.resources.gpu == 0.5


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(SpaceError, match="missing.yaml: cannot be read"):
        load_space(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("params: [unclosed\n")
    with pytest.raises(SpaceError, match=r"bad.yaml: line \d+: not valid YAML"):
        load_space(bad)


def test_binary_file_is_a_clear_error(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SpaceError, match="is not a text file"):
        load_space(path)


ABLATIONS = ROOT / "search_spaces" / "ablations"


def test_b1_grid_enumerates_conditional_combinations():
    space = load_space(ABLATIONS / "b1_noise_cl.yaml")
    points = space.grid_points()
    # (baseline + DejaVu with CL off/on) x 3 noise levels x 3 seeds; no CL key on baselines
    assert len(points) == space.search.num_samples == 3 * 3 * 3
    assert points[0] == {"dejavu.enabled": False, "data.input_noise": 0.0, "seed": 0}
    assert {"dejavu.enabled": True, "dejavu.loss.cl_weight": 0.1, "data.input_noise": 0.3,
            "seed": 2} in points
    assert space.report["columns"] == "data.input_noise"
    assert space.search.algorithm == "grid" and space.search.baseline is False


@pytest.mark.parametrize("name, count", [("b3_crm_stages", 15), ("b4_redaction_crm", 15)])
def test_ablation_grids_have_the_tables_rows(name, count):
    assert len(load_space(ABLATIONS / f"{name}.yaml").grid_points()) == count


def test_metric_and_mode_follow_the_task():
    raw = _raw()
    raw["fixed"]["task"] = {"name": "depth"}
    space = parse_space(raw, "space.yaml")
    assert (space.search.metric, space.search.mode) == ("val_abs_rel", "min")
    raw["search"].update(metric="val_delta1")
    assert parse_space(raw, "space.yaml").search.mode == "max"
    raw["search"].update(mode="min")
    with pytest.raises(SpaceError, match="search.mode: 'min' is not allowed for val_delta1: "
                                         r"expected max \(higher is better\)"):
        parse_space(raw, "space.yaml")


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["search"].update(algorithm="grid"),
     "params.optim.lr.type: 'float' is not allowed with search.algorithm: "
     "grid: expected categorical"),
    (lambda r: r["search"].update(algorithm="bayes"),
     "search.algorithm='bayes' is not allowed: expected one of tpe, random, gp, grid"),
    (lambda r: r.update(report={"columns": "data.noise"}),
     "report.columns: 'data.noise' is not allowed: expected one of the params"),
    (lambda r: r.update(report={"colour": 1}), "report.colour: is not a known key"),
    (lambda r: r["fixed"].update(model={"name": "nomodule_xyz:build"}),
     "fixed.model.name: model.name='nomodule_xyz:build': cannot import 'nomodule_xyz'"),
    (lambda r: r["fixed"]["data"].update(name="cityscapes", root="/nonexistent/cs"),
     "fixed.data.root: '/nonexistent/cs' does not exist: expected a dataset directory"),
    (lambda r: r["fixed"]["data"].update(name="cityscapes"),
     "data.root=None is not allowed: expected a file or directory path"),
])
def test_bad_grid_report_plugin_and_dataset_settings(mutate, message):
    raw = _raw()
    mutate(raw)
    with pytest.raises(SpaceError, match=None) as err:
        parse_space(raw, "space.yaml")
    assert message in str(err.value)


def test_task_without_its_targets_in_the_dataset_fails_at_load(tmp_path):
    from helpers.datasets import write_kitti

    raw = _raw()
    raw["fixed"]["data"].update(name="kitti", root=str(write_kitti(tmp_path)))
    with pytest.raises(SpaceError, match="fixed.task.name: task.name='segmentation' needs the "
                                         "targets seg, but data.name='kitti' provides only depth"):
        parse_space(raw, "space.yaml")
    raw["fixed"]["task"] = {"name": "depth"}
    assert parse_space(raw, "space.yaml").search.metric == "val_abs_rel"


def test_asha_decides_on_its_own_metric_or_the_search_metric():
    raw = _raw()
    space = parse_space(raw, "space.yaml")
    assert (space.search.stop_metric, space.search.stop_mode) == ("task_loss", "min")
    del raw["search"]["stop_metric"]
    space = parse_space(raw, "space.yaml")
    assert (space.search.stop_metric, space.search.stop_mode) == ("val_miou", "max")
    raw["search"].update(stop_metric="val_rmse")
    with pytest.raises(SpaceError, match="search.stop_metric: 'val_rmse' is not allowed for "
                                         "this task: expected one of val_miou"):
        parse_space(raw, "space.yaml")
    raw["search"].update(stop_metric="task_loss", stop_mode="max")
    with pytest.raises(SpaceError, match="search.stop_mode: 'max' is not allowed for "
                                         "task_loss: expected min"):
        parse_space(raw, "space.yaml")


def test_shared_params_are_tuned_for_the_baseline_then_fixed_for_dejavu():
    space = load_space(DEFAULT)
    assert [p.name for p in space.shared_params] == ["optim.lr"]
    tuning = space.shared_only()
    assert [p.name for p in tuning.params] == ["optim.lr"]
    assert tuning.base_config().dejavu.enabled is False
    searched = space.with_shared({"optim.lr": 0.05})
    assert "optim.lr" not in [p.name for p in searched.params]
    assert searched.base_config().optim.lr == 0.05
    raw = _raw()
    raw["params"]["dejavu.loss.gamma"]["shared"] = True
    with pytest.raises(SpaceError, match="params.dejavu.loss.gamma.shared: is only for a "
                                         "setting the baseline has too"):
        parse_space(raw, "space.yaml")


def test_sobol_points_spread_over_a_log_range_by_hand():
    from dejavu_tune.search.baseline_tuning import _value, sobol_points

    lr = load_space(DEFAULT).shared_params[0]  # log-uniform over [0.01, 0.2]
    assert _value(lr, 0.0) == pytest.approx(0.01)
    assert _value(lr, 0.5) == pytest.approx((0.01 * 0.2) ** 0.5, rel=1e-5)  # geometric mean
    points = sobol_points([lr], 4, seed=0)
    assert len(points) == 4 and len({p["optim.lr"] for p in points}) == 4
    # one point in each quarter of the log range: what "evenly spread" means for 4 points
    quarters = sorted(int(4 * math.log(p["optim.lr"] / 0.01) / math.log(20)) for p in points)
    assert quarters == [0, 1, 2, 3]
    assert sobol_points([lr], 4, seed=0) == points  # seeded


def test_objectives_take_names_or_mappings_and_the_first_is_the_metric():
    from dejavu_tune.search.cli import DEFAULT_SPACE

    space = load_space(DEFAULT_SPACE, {"search.objectives": [
        "val_miou", {"metric": "mem_ratio", "mode": "min"}, "step_time_ratio"]})
    s = space.search
    assert s.objectives == (("val_miou", "max"), ("mem_ratio", "min"),
                            ("step_time_ratio", "min"))
    assert (s.metric, s.mode) == ("val_miou", "max")
    assert s.costs == (("mem_ratio", "min"), ("step_time_ratio", "min"))
    assert s.stop_metric == "task_loss"  # the default space names its own
    plain = load_space(DEFAULT_SPACE, {"search.objectives": ["val_miou", "step_time_ratio"],
                                       "search.stop_metric": None})
    assert plain.search.stop_metric == "val_miou"  # else the first objective


@pytest.mark.parametrize("objectives, message", [
    (["val_miou"], "expected a list of 2 or 3 metric names"),
    (["val_miou", "step_time_ratio", "mem_ratio", "loss"], "expected a list of 2 or 3"),
    (["val_miou", "val_miou"], "'val_miou' is named twice"),
    (["val_miou", {"metric": "step_time_ratio", "mode": "max"}],
     "objectives[1].mode: 'max' is not allowed for step_time_ratio: expected min"),
    (["val_miou", {"name": "x"}], "search.objectives[1]: {'name': 'x'} is not allowed"),
    (["val_miou", "speed"], "objectives[1].metric: 'speed' is not allowed for this task"),
])
def test_bad_objectives_are_refused_naming_the_entry(objectives, message):
    from dejavu_tune.search.cli import DEFAULT_SPACE

    with pytest.raises(SpaceError) as info:
        load_space(DEFAULT_SPACE, {"search.objectives": objectives})
    assert message in str(info.value)


def test_objectives_contradicting_the_metric_or_on_a_grid_are_refused():
    from dejavu_tune.search.cli import DEFAULT_SPACE

    with pytest.raises(SpaceError, match="search.metric: 'val_pixel_acc' is not allowed with "
                                         "objectives"):
        load_space(DEFAULT_SPACE, {"search.metric": "val_pixel_acc",
                                   "search.objectives": ["val_miou", "mem_ratio"]})
    with pytest.raises(SpaceError, match="not allowed with algorithm: grid"):
        load_space("search_spaces/ablations/b4_redaction_crm.yaml",
                   {"search.objectives": ["val_miou", "mem_ratio"]})


@pytest.mark.parametrize("settings, message", [
    ({"min_effect": -0.01}, "search.min_effect=-0.01 is not allowed: expected a positive"),
    ({"min_effect": "half a point"}, "search.min_effect='half a point' is not allowed"),
    ({"min_effect": True}, "search.min_effect=True is not allowed"),
    ({"min_effect": float("inf")}, "search.min_effect=inf is not allowed"),
    ({"noise_floor": 0}, "search.noise_floor=0 is not allowed"),
    ({"max_seeds": 2}, "search.max_seeds=2 is not allowed: expected an integer from "
                       "baseline_seeds (3) to 100"),
    ({"max_seeds": 101}, "search.max_seeds=101 is not allowed"),
    ({"max_seeds": 4.5}, "search.max_seeds=4.5 is not allowed"),
    ({"baseline_seeds": 1}, "search.baseline_seeds=1 is not allowed: expected 2 or more with a confirmation"),
])
def test_bad_confirmation_settings_are_refused_naming_what_is_allowed(settings, message):
    raw = _raw()
    raw["search"].update(settings)
    with pytest.raises(SpaceError, match=re.escape(message)):
        parse_space(raw, "space.yaml")


def test_the_smallest_effect_defaults_to_the_metrics_own_and_can_be_set():
    raw = _raw()
    s = parse_space(raw, "space.yaml").search
    assert (s.min_effect, s.max_seeds, s.noise_floor) == (0.005, 8, None)
    raw["search"].update(metric="val_pixel_acc", min_effect=0.01, noise_floor=0.004)
    s = parse_space(raw, "space.yaml").search
    assert (s.min_effect, s.noise_floor) == (0.01, 0.004)
    # no confirmation: nothing to check about it
    raw["search"].update(confirm_top=0, baseline_seeds=1, max_seeds=0)
    assert parse_space(raw, "space.yaml").search.confirm_top == 0
