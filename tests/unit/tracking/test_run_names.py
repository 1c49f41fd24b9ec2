from dejavu_tune.config import TrainConfig
from dejavu_tune.tracking.run_names import readable, run_name, trial_name


def _cfg(**overrides):
    return TrainConfig().replace(**overrides)


def test_a_trial_is_named_by_its_number_and_dejavu_essence():
    cfg = _cfg(**{"dejavu.crm.kind": "crm_r", "dejavu.crm.steps": 2,
                  "dejavu.redaction.kind": "highpass", "dejavu.redaction.block_size": 16,
                  "dejavu.loss.gamma": 1.6789})
    assert run_name(cfg, {}, "77934a14", "search", "/r/dejavu_trainable_77934a14_7_dejavu_crm=x") == "t07 crm_r K=2 · highpass b16 · γ1.679"
    cfg = _cfg(**{"dejavu.crm.kind": "crm_f", "dejavu.crm.stages": 3, "seed": 2})
    # a confirmation run names the search trial it re-trains, never its own number
    assert (run_name(cfg, {}, "ab", "confirm-2", "dejavu_trainable_ab_12_seed=2", "t04")
            == "confirm of t04 · crm_f S=3 · random_blocks b32 · γ1.0 · seed 2")
    base = _cfg(**{"dejavu.enabled": False, "seed": 6})
    assert run_name(base, {"dejavu.enabled": False, "seed": 6}, "cd", "confirm-2",
                    "dejavu_trainable_cd_3_seed=6") == "confirm baseline seed 6"


def test_a_baseline_says_so_with_its_seed_and_the_values_it_tries():
    cfg = _cfg(**{"dejavu.enabled": False, "seed": 3})
    assert run_name(cfg, {"dejavu.enabled": False, "seed": 3}, "x", "search", "f_x_1_seed=3") == (
        "t01 baseline seed 3")
    sampled = {"dejavu.enabled": False, "optim.lr": 0.035112940183}
    assert run_name(_cfg(**{"dejavu.enabled": False}), sampled, "x", "tuning", "f_x_0") == (
        "tuning t00 baseline seed 0 · lr 0.03511")


def test_numbers_and_params_read_plainly():
    assert trial_name("77934a14", "/runs/s/dejavu_trainable_77934a14_3_lr=0.1") == "t03"
    assert trial_name("77934a14", "/runs/s/dejavu_trainable_77934a14") == "77934a14"
    assert trial_name("crm-abc") == "crm-abc"
    # Tune's directories as the search names them (a search recorded before: above)
    assert [trial_name("77934a14", d) for d in ("/r/search/t12", "/r/confirm/t03_seed7",
                                                "/r/confirm-2/baseline_seed-1")] == [
        "t12", "confirm of t03 · seed 7", "confirm baseline seed -1"]
    assert trial_name("ab", "/r/search/t12x") == "ab"
    assert readable(0.035112940183) == "0.03511"
    assert readable(3e-05) == "3e-05" and readable(0.0) == "0.0" and readable(0.1) == "0.1"
    assert readable(12) == "12" and readable(True) == "True" and readable("crm_r") == "crm_r"
