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
