"""A trial's memory (``dejavu_tune.train.memory``): an allocation failure told from other
errors, its numbers, and a failed trial's tensors given back."""

import gc
import os
import re
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import torch
from helpers.cluster import QUICK, kill, search_meta, trial_runs

from dejavu_tune.search.trial_records import FAILURES, failure_status
from dejavu_tune.train import memory

ROOT = Path(__file__).resolve().parents[3]


def _real_cpu_failure() -> RuntimeError:
    try:
        torch.empty(1 << 50, dtype=torch.uint8)
    except RuntimeError as exc:
        return exc
    pytest.skip("this machine allocated a petabyte")


def test_an_allocation_failure_is_told_from_other_errors():
    cpu = _real_cpu_failure()
    assert memory.is_out_of_memory(cpu)
    assert memory.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to "
                                                          "allocate 2.00 GiB"))
    assert not memory.is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be "
                                                    "multiplied (8x3 and 4x5)"))
    assert not memory.is_out_of_memory(ValueError("out of memory"))  # not the allocator's
    # the driver sees only an error's text (Tune's), and reads the same status from it
    assert failure_status(f"RuntimeError: {cpu}") == memory.OUT_OF_MEMORY
    assert failure_status("torch.OutOfMemoryError: CUDA out of memory.") == "out_of_memory"
    assert failure_status("ValueError: bad shape") == "failed" and failure_status(None) == "failed"
    assert set(FAILURES) == {"failed", "out_of_memory"}


def test_the_report_gives_the_numbers_a_trial_is_sized_by():
    text = memory.allocator_report(cuda=False)
    assert text.startswith("cpu: peak resident set of the trial's process ")
    assert int(text.split()[-2]) > 10  # MiB: this very process holds torch


class _Held:
    """Stands for a trial's trainer: something its frames hold when it raises."""


def _trial(box: list) -> None:
    held = _Held()
    box.append(weakref.ref(held))
    torch.empty(1 << 50, dtype=torch.uint8)  # raises, with ``held`` in this frame


@pytest.mark.parametrize("forgotten", [True, False])
def test_a_failed_trials_objects_are_freed_only_once_its_traceback_forgets_them(forgotten):
    box: list = []
    try:
        _trial(box)
    except RuntimeError as exc:
        kept = exc  # what Tune does with a trial's error
    if forgotten:
        memory.forget(kept)
    memory.release()
    gc.collect()
    assert (box[0]() is None) == forgotten  # the control: the traceback alone keeps it
    del kept


# What a reused worker's resident set may grow over its last 25 of 50 trials. It grows
# over the first ten or so (each new configuration's kernels and caches, LPIPS once, about
# 20 MB a trial), then levels off: measured +2.5 to +5 MB from trial 25 to 50. A trial that
# kept its trainer (network, CRM, Adam's state, data) adds over 1 MB each: +33 MB.
RSS_GROWTH_BOUND_MB = 20.0
REUSED_TRIALS = 50


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@pytest.mark.integration
@pytest.mark.slow
def test_a_reused_worker_does_not_grow_over_fifty_trials(tmp_path):
    """50 real trials (CRM-F with LPIPS, the network, Adam, the synthetic data) one after
    another in one reused Ray worker; its RSS is sampled as they run and read at each
    trial's start, after the previous trial gave its memory back."""
    args = [sys.executable, "-m", "dejavu_tune.search", "--storage-path", str(tmp_path),
            "--name", "rss", "--num-samples", str(REUSED_TRIALS - 1), "--max-concurrent", "1",
            "--grace-period", "1", "--set", "optim.epochs=1", "--set", "data.num_train=32",
            "--set", "data.num_val=8", "--set", "data.image_size=32", "--set",
            "model.width=8", "--set", "dejavu.crm.width=8", "--set", "dejavu.crm.init=scratch",
            "--set", "device=cpu", *QUICK]
    driver = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    samples: dict[int, list[tuple[float, float]]] = {}
    try:
        while driver.poll() is None:
            out = subprocess.run(["pgrep", "-f", "ray::ImplicitFunc"], capture_output=True,
                                 text=True).stdout
            for pid in map(int, out.split()):
                try:  # this search's workers only: not another test's leftovers
                    if os.getsid(pid) != driver.pid:
                        continue
                except ProcessLookupError:
                    continue
                rss = _rss_mb(pid)
                if rss is not None:
                    samples.setdefault(pid, []).append((time.time() * 1000, rss))
            time.sleep(0.05)
        out = driver.stdout.read()
    finally:
        kill(driver)
    assert driver.returncode == 0, out[-3000:]
    _, runs = trial_runs(search_meta(tmp_path, "rss"))
    starts = sorted(r.info.start_time for r in runs)
    assert len(starts) == REUSED_TRIALS
    (pid, series), = [(p, s) for p, s in samples.items() if len(s) > 20]  # one reused worker
    at_start = [next((rss for t, rss in reversed(series) if t <= start), None)
                for start in starts]
    assert None not in at_start[1:], at_start
    growth = at_start[-1] - at_start[24]
    print(f"reused worker {pid}: RSS at the start of trial 2 {at_start[1]:.0f} MB, trial 10 "
          f"{at_start[9]:.0f} MB, trial 25 {at_start[24]:.0f} MB, trial 50 "
          f"{at_start[-1]:.0f} MB (growth over the last 25 {growth:+.1f} MB, bound "
          f"{RSS_GROWTH_BOUND_MB:g} MB)")
    assert growth <= RSS_GROWTH_BOUND_MB, at_start


def test_the_probe_step_measures_one_ranks_rows_of_the_base_configuration():
    from dejavu_tune.config import TrainConfig
    from dejavu_tune.search.memory_estimate import probe
    from dejavu_tune.search.space import Resources

    cfg = TrainConfig.from_dict({
        "device": "cpu", "data": {"image_size": 32, "num_train": 16, "num_val": 4},
        "model": {"width": 8}, "optim": {"batch_size": 8},
        "dejavu": {"crm": {"kind": "crm_r", "steps": 3, "width": 8}}})
    line = probe(cfg, Resources(cpu=2, workers=2))
    assert re.fullmatch(r"memory per rank: \d+ MiB peak in one probe step of the base "
                        r"configuration \(small, crm_r 3 steps, 4 image\(s\) per rank\) "
                        r"\(the process's peak resident set\); sampled parameters change it",
                        line), line
    assert int(line.split()[3]) > 100  # MiB: the process holds torch and the trainer


def test_a_dry_run_without_a_gpu_says_it_did_not_estimate_memory(tmp_path, capsys):
    from dejavu_tune.search.cli import main

    assert main(["--dry-run", "--storage-path", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ("memory per trial: not estimated (the trials would train on the CPU here; on a "
            "GPU node the dry run measures one probe step)") in out
    assert not list(tmp_path.iterdir())  # a dry run leaves nothing behind
