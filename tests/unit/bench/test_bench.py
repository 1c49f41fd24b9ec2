import json
import time

import pytest

from dejavu_tune.bench import cli as bench


@pytest.mark.slow
def test_overhead_prints_every_variant_with_ratios(capsys):
    assert bench.main(["overhead", "--preset", "small", "--iters", "1", "--warmup", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(rows) == ["baseline", "crm_f2", "crm_r20", "crm_r20_ckpt"]
    assert rows["baseline"][2] == "1.000" and rows["baseline"][5] == "0"
    assert all(float(r[1]) > 0 and float(r[3]) > 0 for r in rows.values())


def test_bad_iteration_count_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["overhead", "--iters", "0"])
    assert exit_info.value.code == 2
    assert "--iters must be at least 1" in capsys.readouterr().err



@pytest.mark.slow
def test_scaling_times_one_and_two_ranks_and_their_share(capsys, tmp_path):
    out = tmp_path / "scaling.json"
    assert bench.main(["scaling", "--iters", "1", "--warmup", "0", "--rounds", "1",
                       "--batch-size", "4", "--image-size", "32", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    results = json.loads(out.read_text())
    assert list(results) == ["baseline", "baseline, BN per rank", "crm_f2"]
    for name, row in zip(results, lines[2:], strict=True):
        t = results[name]
        assert set(t) == {"1 rank", "2 ranks", "one rank's own work"}
        assert all(v > 0 for v in t.values())
        # the printed columns are the timings': batch / step time, their ratio, 1 - own/N
        fields = row[len(name):].split()
        assert float(fields[0]) == pytest.approx(4 / t["1 rank"], abs=0.05)
        assert float(fields[1]) == pytest.approx(4 / t["2 ranks"], abs=0.05)
        assert fields[2] == f"{t['1 rank'] / t['2 ranks']:.2f}x"
        share = 1 - t["one rank's own work"] / t["2 ranks"]
        assert fields[4] == f"{share:.1%}"


@pytest.mark.parametrize("argv, message", [
    (["--ranks", "1"], "--ranks=1 is not allowed: expected 2 or more"),
    (["--threads", "3"], "--threads 3 and --batch-size 16 must split evenly over --ranks 2"),
    (["--batch-size", "6", "--ranks", "4", "--threads", "4"], "--batch-size 6 must split"),
    (["--image-size", "8"], "--image-size=8 is not allowed: expected 16 or more"),
])
def test_scaling_refuses_what_cannot_split_before_any_rank_starts(capsys, argv, message):
    assert bench.main(["scaling", *argv]) == 2
    assert message in capsys.readouterr().err

@pytest.mark.parametrize("name, classes, size", [("cityscapes", 19, (32, 64)),
                                                 ("ade20k", 150, (48, 48))])
def test_b5_sample_data_is_read_by_the_datasets_own_reader(tmp_path, name, classes, size):
    from dejavu_tune.bench.sample_data import write_sample
    from dejavu_tune.config import DataConfig
    from dejavu_tune.data import build_heldout, build_splits

    write_sample(name, tmp_path, *size)
    cfg = DataConfig(name=name, root=str(tmp_path), image_size=size[0], image_width=size[1])
    train, search = build_splits(cfg)
    # two training images: one trains, one is the search split; val is held out
    assert len(train) == len(search) == len(build_heldout(cfg)) == 1
    assert train.num_classes == classes
    sample = train[0]
    assert tuple(sample["image"].shape) == (3, *size)
    labels = sample["seg"].unique()
    # random labels cover many of the classes, and nothing outside them but the ignore label
    assert ((labels < classes) | (labels == 255)).all() and (labels < classes).sum() > classes // 2


def test_b5_presets_measure_the_seeds_rows_only():
    for preset in ("b5_hrnet18_ocr", "b5_poolformer_m48"):
        assert bench.PRESETS[preset]["optim"]["batch_size"] == 1
        assert set(bench.PRESET_VARIANTS[preset]) <= set(bench.VARIANTS) | set(bench.BREAKDOWN)
        for name in bench.PRESET_VARIANTS[preset]:
            crm = {**bench.VARIANTS, **bench.BREAKDOWN}[name].get("crm")
            assert crm is None or (crm["kind"], crm["steps"]) == ("crm_r", 20)


def test_the_std_interval_is_the_chi_square_one():
    from dejavu_tune.bench.noise_floor import std_interval

    # sd = sqrt(2.5); chi2(4) quantiles 0.025 / 0.975: 0.484419 / 11.143287
    sd, low, high = std_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert sd == pytest.approx(1.581139, abs=1e-6)
    assert low == pytest.approx(1.581139 * (4 / 11.143287) ** 0.5, abs=1e-5)
    assert high == pytest.approx(1.581139 * (4 / 0.484419) ** 0.5, abs=1e-5)
    assert low == pytest.approx(0.9473, abs=1e-4) and high == pytest.approx(4.5435, abs=1e-4)


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "1"], "--seeds=1 is not allowed: expected 2 or more"),
    (["--lr", "0"], "--lr=0.0 is not allowed: expected a positive number"),
    (["--set", "optim.epochz=2"], "optim.epochz"),
    (["--run-timeout", "0"], "--run-timeout=0.0 is not allowed: expected a positive number"),
])
def test_noise_floor_refuses_bad_input_before_any_run(capsys, argv, message):
    assert bench.main(["noise-floor", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "seed 1:" not in err


def test_noise_floor_stops_at_its_bound_when_a_run_hangs(capsys):
    # a spawned process needs seconds to import torch: no run can finish within 0.2 s
    started = time.monotonic()
    assert bench.main(["noise-floor", "--seeds", "2", "--lr", "0.1", "--workers", "1",
                       "--run-timeout", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "the run at lr 0.1, seed 1 did not finish within --run-timeout=0.2 s" in err
    assert time.monotonic() - started < 30  # its process was ended, not waited for


@pytest.mark.slow
def test_noise_floor_trains_every_seed_and_prints_the_spread(capsys):
    assert bench.main(["noise-floor", "--seeds", "2", "--lr", "0.1", "--workers", "2",
                       "--set", "optim.epochs=1", "--set", "data.num_train=16",
                       "--set", "data.num_val=8", "--set", "model.width=8"]) == 0
    out = capsys.readouterr().out
    values = [float(line.split(": ")[1].split()[0]) for line in out.splitlines()
              if line.startswith("  lr 0.1 seed ")]
    assert len(values) == 2 and all(0 < v < 1 for v in values)
    (row,) = [line.split() for line in out.splitlines() if line.startswith("    0.1 ")]
    assert float(row[1]) == pytest.approx(sum(values) / 2, abs=1e-4)
    assert float(row[2]) == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5, abs=1e-4)


def test_verdict_check_simulates_the_design_the_searches_run():
    import argparse

    from dejavu_tune.bench.verdict_check import FAST, _model

    args = argparse.Namespace(space=None, seed_noise=0.03, run_noise=0.004, image_noise=0.001)
    model, space = _model(args, {**FAST, "search.num_samples": 4, "search.confirm_top": 2})
    # hypot(0.03, 0.004) = 0.030265; the shared share 0.0009 / 0.000916 = 0.98253
    assert model.seed_sd == pytest.approx(0.030265, abs=1e-6)
    assert model.pairing == pytest.approx(0.98253, abs=1e-5)
    assert (model.trials, model.top, model.first, model.max_seeds) == (4, 2, 3, 8)
    assert model.image_sd == 0.001 and model.min_effect == space.search.min_effect == 0.005
    assert model.design().looks == (3, 5, 7, 8)


def test_every_configuration_planted_counts_any_winner_as_a_detection():
    from dejavu_tune.bench.verdicts import EVERY, Model, simulate

    model = Model(seed_sd=0.003, image_sd=0.0, pairing=0.5, min_effect=0.005, trials=4, top=2)
    _, new = simulate(model, EVERY, reps=200, seed=1)
    # private noise 0.0021 against a planted 0.01: every search finds a significant gain
    assert new.false_winner == 0 and new.detected == new.reps == 200


@pytest.mark.parametrize("argv, message", [
    (["--searches", "0"], "--searches=0 is not allowed: expected 1 or more"),
    (["--run-noise", "-1"], "--run-noise=-1.0 is not allowed: expected 0 or more"),
    (["--set", "search.confirm_top=0"], "needs a search that confirms"),
    (["--set", "search.num_sample=3"], "search.num_sample"),
    (["--storage-path", "/etc/hostname/runs"], "--storage-path '/etc/hostname/runs' cannot be made"),
])
def test_verdict_check_refuses_bad_input_before_any_search(capsys, argv, message):
    assert bench.main(["verdict-check", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "search 0:" not in captured.out
