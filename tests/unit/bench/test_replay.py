"""``bench replay``: search strategies replayed on recorded curves, through the real
searcher and scheduler (``raytune.search_algorithms``)."""

import json
from collections import Counter

import pytest

from dejavu_tune.bench import replay as rp
from dejavu_tune.bench.replay_table import Row, Run, Table, load, save
from dejavu_tune.outcome.limits import parse
from dejavu_tune.search.space_file import load_space

SPACE = "search_spaces/default.yaml"
A = {"dejavu.redaction.kind": "checkerboard", "dejavu.redaction.block_size": 4,
     "dejavu.crm.kind": "crm_f", "dejavu.crm.stages": 2, "dejavu.loss.gamma": 0.1,
     "dejavu.loss.gamma1": 1.0, "dejavu.loss.gamma2": 0.1, "dejavu.crm.condition": "soft"}
B = {**A, "dejavu.crm.kind": "crm_r", "dejavu.crm.steps": 4}
del B["dejavu.crm.stages"]


@pytest.fixture(scope="module")
def space():
    # ASHA's first rung at epoch 1 of the tables' 2
    return load_space(SPACE, {"search.grace_period": 1}).with_shared({})


def _table(space, a_curve, b_curve, b_costs=None):
    """A: val_miou ``a_curve``, task_loss 0.4 then 0.1, 10 s an epoch; B: ``b_curve``,
    task_loss 0.8 then 0.6, 5 s an epoch."""
    ranges = {p.name: (p.low, p.high, p.log) for p in space.params if p.type != "categorical"}
    return Table("default.yaml", "val_miou", "max", "task_loss", "min", 2, (
        Row(A, (Run(1, a_curve, (0.4, 0.1), (10.0, 10.0), {"step_time_ratio": 1.05}),)),
        Row(B, (Run(1, b_curve, (0.8, 0.6), (5.0, 5.0), b_costs or {}),))), ranges=ranges)


def test_one_worker_replays_asha_by_hand(space, tmp_path):
    # A first (enqueued): alone at the rung, it runs both epochs (t = 20 s) and is the
    # best: reached after 2 trial-epochs. B then loses the rung to A's task_loss (0.8
    # against the cut-off 0.4: the real BaselineExemptASHA writes why) and the budget of
    # 3 trial-epochs is spent.
    table = _table(space, (0.5, 0.9), (0.3, 0.5))
    out = rp.replay(table, space, rp.Strategy("random"), 1, 3, 0.005, 0, points=[A, B],
                    stops_dir=tmp_path)
    assert (out.trials, out.epochs, out.stopped) == (2, 3, 1)
    assert (out.reached_epochs, out.reached_s, out.ended_within) == (2, 20.0, True)
    assert out.final_regret == 0.0 and not out.near_best_stopped
    stop = json.loads((tmp_path / "asha_stops.jsonl").read_text())
    assert (stop["rung"], stop["metric"], stop["value"], stop["cutoff"]) == (1, "task_loss",
                                                                           0.8, 0.4)


def test_asha_stopping_the_true_best_is_counted_and_the_search_misses_it(space):
    # B would end best (0.95) but loses the rung: the search ends on A, 0.05 short
    table = _table(space, (0.5, 0.9), (0.3, 0.95))
    out = rp.replay(table, space, rp.Strategy("random"), 1, 3, 0.005, 0, points=[A, B])
    assert out.near_best_stopped and not out.ended_within
    assert out.reached_epochs == float("inf")
    assert out.final_regret == pytest.approx(0.05)


def test_two_workers_run_at_once_and_the_faster_trial_reports_first(space):
    # A (10 s an epoch) and B (5 s) start together; B reaches the rung first, alone, and
    # is not stopped; A's rung then compares with B's 0.8 (A's 0.4 is better): neither
    # stops. B ends at t = 10 s (3 trial-epochs spent): its worker starts the third
    # trial, A again. A ends at t = 20 s, the 4th trial-epoch: reached. The third trial's
    # first epoch, also at 20 s, is past the budget of 4: it ends there, not stopped.
    table = _table(space, (0.5, 0.9), (0.3, 0.5))
    out = rp.replay(table, space, rp.Strategy("random"), 2, 4, 0.005, 0, points=[A, B, A])
    assert (out.trials, out.epochs, out.stopped) == (3, 5, 0)
    assert (out.reached_epochs, out.reached_s) == (4, 20.0)


def test_a_limit_makes_the_sampler_avoid_the_dearer_best_and_never_pick_it(space):
    # B is better (0.9 vs 0.8) but twice as slow a step: under step_time_ratio <= 1.10
    # TPE learns to avoid it, and the search's best is A
    table = _table(space, (0.5, 0.8), (0.6, 0.9), {"step_time_ratio": 2.0})
    limits = parse(["step_time_ratio <= 1.10"])
    kinds = {}
    for name, given in (("free", ()), ("limited", limits)):
        rows: list = []
        out = rp.replay(table, space, rp.Strategy("tpe", False, startup_trials=4), 1, 60,
                        0.005, 3, limits=given, sampled=rows)
        kinds[name] = Counter(r.params["dejavu.crm.kind"] for r in rows)
        if given:
            assert out.final_regret == pytest.approx(0.1)  # ended on A, never on B
    assert kinds["limited"]["crm_r"] < kinds["free"]["crm_r"]
    assert kinds["limited"]["crm_r"] <= 10 < kinds["limited"]["crm_f"]


def test_nearest_is_the_gower_distance(space):
    table = _table(space, (0.5, 0.9), (0.3, 0.5))
    assert table.nearest({**A, "dejavu.loss.gamma": 1.0}) is table.rows[0]
    # crm_r without steps: 1 from B (its steps), 2 from A (the kind, A's stages)
    proposal = {k: v for k, v in A.items() if k != "dejavu.crm.stages"}
    assert table.nearest({**proposal, "dejavu.crm.kind": "crm_r"}) is table.rows[1]
    # with A's stages still set: 1 from A (the kind), 2 from B (stages, steps)
    assert table.nearest({**A, "dejavu.crm.kind": "crm_r"}) is table.rows[0]
    # gamma on a log scale: 0.03..1, so 0.1 and 0.3 are 0.31 apart, not 0.21
    assert table._gap("dejavu.loss.gamma", 0.1, 0.3) == pytest.approx(0.3133, abs=1e-4)
    assert table._gap("dejavu.crm.stages", None, None) == 0.0
    assert table._gap("dejavu.crm.stages", 2, None) == 1.0


def test_a_table_round_trips_and_writes_the_same_bytes(space, tmp_path):
    table = _table(space, (0.5, 0.9), (0.3, 0.5))
    save(table, tmp_path / "a.json.gz")
    save(load(tmp_path / "a.json.gz"), tmp_path / "b.json.gz")
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
    again = load(tmp_path / "a.json.gz")
    assert again.rows[1].runs[0].metric == (0.3, 0.5) and again.best == 0.9
    assert again.ranges == table.ranges


def test_the_summary_row_medians_and_the_ratio_to_random():
    runs = [rp.Search(reached_epochs=e, final_regret=0.0, ended_within=True)
            for e in (10, 20, 30)]
    ref = [rp.Search(reached_epochs=e, final_regret=0.01, ended_within=False)
           for e in (40, 60, float("inf"))]
    row = rp.summarise("x", runs, ref, 100)
    assert row["epochs_median"] == 20 and row["ratio"] == pytest.approx(20 / 60)
    assert row["ended_within"][0] == 1.0 and row["regret_mean"] == 0.0
    alone = rp.summarise("random", ref, None, 100)
    assert alone["regret_mean"] == pytest.approx(1.0) and "ratio" not in alone
    assert alone["reached"][0] == pytest.approx(2 / 3)


def test_the_recorded_default_table_has_100_configurations_on_3_seeds():
    table = load(rp.DEFAULT_TABLE)
    assert len(table.rows) >= 100 and all(len(r.runs) >= 3 for r in table.rows)
    assert all(len(run.metric) == table.epochs == 12 for r in table.rows for run in r.runs)
    assert table.made_by  # the commands that recorded it


@pytest.mark.parametrize("argv, message", [
    (["replay", "--workers", "0"], "--workers=0 is not allowed: expected 1 or more"),
    (["replay", "--budget", "-1"], "--budget=-1.0 is not allowed: expected a positive number"),
    (["replay", "--table", "{d}/none.json.gz"], "no such file: expected a table"),
    (["replay", "--json", "{d}/file.txt/out.json"], "is not a writable directory"),
    (["replay-table", "1={d}"], "is not allowed: expected SEED=DIR"),
])
def test_bad_flags_are_refused_in_one_line_before_any_replay(tmp_path, capsys, argv, message):
    from dejavu_tune.bench import cli as bench

    (tmp_path / "file.txt").write_text("x")
    argv = [a.replace("{d}", str(tmp_path)) for a in argv]
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
