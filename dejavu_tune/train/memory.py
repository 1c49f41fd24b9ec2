"""A trial's memory: telling an allocation failure from other errors, with the
allocator's numbers, and giving a finished trial's memory back before the next trial
starts in the same (reused) worker process.

An out-of-memory error says the trial was too large for where it ran (batch, image size,
trials per GPU), not that its configuration is bad; the search records it apart."""

from __future__ import annotations

import gc
import re
import traceback
from typing import Any

__all__ = ["OUT_OF_MEMORY", "ADVICE", "is_out_of_memory", "names_out_of_memory",
           "allocator_report", "forget", "release", "step_peak"]

OUT_OF_MEMORY = "out_of_memory"  # a trial's status (dejavu.status) when it ran out
# what lets such a trial run, wherever the search says it ran out
ADVICE = ("a smaller optim.batch_size or data.image_size, or more of a GPU per trial "
          "(--gpus-per-trial)")

# CUDA's allocator raises torch.OutOfMemoryError; the CPU's a RuntimeError with this text.
# Tune hands the driver an error's text only, so the text is what identifies it there.
_OOM_TEXT = re.compile(r"OutOfMemoryError|out of memory|can't allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and names_out_of_memory(str(exc)))


def names_out_of_memory(text: str | None) -> bool:
    """Whether an error's text (a failure reason) is an allocation failure."""
    return bool(text) and bool(_OOM_TEXT.search(text))


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def allocator_report(cuda: bool) -> str:
    """The numbers a user sizes a trial by: for the GPU its allocator's allocated,
    reserved and peak memory and the device's free and total; for the CPU the process's
    peak resident set."""
    import torch

    if cuda and torch.cuda.is_available():
        index = torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        return (f"cuda:{index}: allocated {_mib(torch.cuda.memory_allocated(index))}, "
                f"reserved {_mib(torch.cuda.memory_reserved(index))}, peak allocated "
                f"{_mib(torch.cuda.max_memory_allocated(index))}, free {_mib(free)} of "
                f"{_mib(total)}")
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return f"cpu: peak resident set of the trial's process {_mib(peak)}"


def forget(exc: BaseException) -> None:
    """Drop the local variables of the finished frames an error's traceback holds (the
    trainer, its batches, its optimiser state): Tune keeps the error, and with it, until
    then, every tensor the failed trial had."""
    tb = exc.__traceback__
    if tb is not None:
        traceback.clear_frames(tb)


def release() -> None:
    """Collect what a finished trial left and return CUDA's cached blocks to the device, so
    the next trial in this process starts from the memory it would start from alone.

    What survives the collection (the imports, Ray's, MLflow's and torch's state, the
    caches shared by trials) outlives every trial, so it is frozen: the next collection,
    and Python's own full collections during the next trial's epochs, walk only what was
    made since. Walking it all again took 0.2 s idle and 0.5 s beside a training trial
    (~400k objects), as much as a tiny trial's epoch (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        for index in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(index)


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM (peak RSS) of this process from /proc, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**10
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> None:
    # Linux >= 4.0: writing 5 to clear_refs resets VmHWM, so the peak covers the steps only.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def step_peak(trainer: Any, batch: dict[str, Any], iters: int,
              warmup: int) -> dict[str, float]:
    """Peak memory (MiB) of ``iters`` training steps on ``batch`` after ``warmup`` ones:
    on CUDA the allocator's peak allocated bytes, on the CPU the process's peak resident
    set; ``step_mb`` is the peak above what was held before the timed steps."""
    import torch

    cuda = trainer.device.type == "cuda"
    for _ in range(warmup):
        trainer.train_step(batch)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        _reset_peak_rss()
        before = _status_mb("VmRSS")
    for _ in range(iters):
        trainer.train_step(batch)
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _status_mb("VmHWM")
    return {"peak_mb": peak, "step_mb": peak - before}
