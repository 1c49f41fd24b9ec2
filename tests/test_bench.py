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
])
def test_noise_floor_refuses_bad_input_before_any_run(capsys, argv, message):
    assert bench.main(["noise-floor", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "seed 1:" not in err


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
