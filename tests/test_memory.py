"""A trial's memory (``dejavu_tune.train.memory``): an allocation failure told from other
errors, its numbers, and a failed trial's tensors given back."""

import gc
import weakref

import pytest
import torch

from dejavu_tune.search.trial_records import FAILURES, failure_status
from dejavu_tune.train import memory


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
