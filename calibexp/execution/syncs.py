"""``train.check_syncs``: fail at the first host-device synchronisation inside the step loop.

A ``.item()``, a ``bool(tensor)``, a boolean-mask index or a ``.tolist()`` makes the host wait
until the device has run everything queued so far; one per step keeps a GPU idle between steps
(launch overhead can no longer hide behind the previous step's kernels). The engine reads its
running sums once per epoch, after the loop, and nothing inside the loop may wait.

On CUDA the check is PyTorch's own: ``torch.cuda.set_sync_debug_mode("error")`` raises at the
synchronising call. Elsewhere there is no device to wait for, so a stand-in watches the
operators that synchronise on CUDA (``HOST_READS`` below, seen through a
``TorchDispatchMode``) and the two tensor methods that read memory without an operator
(``tolist``, ``numpy``), which is what lets a test suite without a GPU hold every loss to the
rule. It is a stand-in, wrong in both directions at the edges: it refuses what only a CPU
kernel reads back (``F.one_hot``'s range check, which CUDA leaves to device asserts), and it
cannot see a host-to-device copy other than a tensor made from host data (a ``.to(device)`` is
no copy on a CPU). CUDA's own check is the one ``benchmarks/gpu.py`` runs.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from calibexp.errors import CalibexpError

# Operators that copy a device value to the host on CUDA, by what a user writes.
HOST_READS = {
    "aten._local_scalar_dense": ".item(), float(t), int(t) or bool(t) (an `if` on a tensor)",
    "aten.nonzero": "nonzero / torch.where(cond) with one argument",
    "aten.masked_select": "masked_select",
    "aten.unique_dim": "torch.unique",
    "aten._unique": "torch.unique",
    "aten._unique2": "torch.unique",
    "aten.unique_consecutive": "torch.unique_consecutive",
    "aten.bincount": "torch.bincount (its output size is the input's max)",
    "aten.equal": "torch.equal",
    # torch.tensor(x) / torch.as_tensor(x) of host data: on CUDA, with device=, a blocking
    # host-to-device copy
    "aten.lift_fresh": "a tensor made from host data (torch.tensor, torch.as_tensor)",
    "aten.lift_fresh_copy": "a tensor made from host data (torch.tensor, torch.as_tensor)",
}
BOOLEAN_INDEXED = ("aten.index", "aten.index_put", "aten.index_put_", "aten._index_put_impl_")
PACKAGE = Path(__file__).resolve().parents[1]
TORCH = Path(torch.__file__).resolve().parent
# torch's optimisers keep their step count on the host unless capturable or fused (Adam's
# bias correction reads it with .item()), precisely so that reading it costs no sync: a host
# read from there is a read of host memory in a CUDA run too.
HOST_STATE_READERS = TORCH / "optim"


class HostSyncError(CalibexpError):
    """The step loop synchronised with the device; the message names what and where."""


def no_host_syncs(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """A context in which a host-device sync raises ``HostSyncError``: CUDA's sync debug mode
    on CUDA, the operator watch elsewhere; nothing when not ``enabled``."""
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cuda":
        return _cuda_sync_debug(device)
    return _watched_host_reads()


@contextlib.contextmanager
def _cuda_sync_debug(device: torch.device) -> Iterator[None]:
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.synchronize(device)  # what was queued before the loop is not the loop's
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    except RuntimeError as err:
        if "synchronizing" not in str(err):
            raise
        raise HostSyncError(_message(str(err).splitlines()[0], err.__traceback__)) from None
    finally:
        torch.cuda.set_sync_debug_mode(previous)


class _HostReadWatch(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.name().split(".")[0].replace("::", ".")
        what = HOST_READS.get(name)
        if what is None and name in BOOLEAN_INDEXED and _has_mask_index(args):
            what = "indexing with a boolean mask (x[mask])"
        if what is not None and not _reads_host_state():
            raise HostSyncError(_message(f"{name}: {what}", None))
        return func(*args, **(kwargs or {}))


def _reads_host_state() -> bool:
    return any(
        HOST_STATE_READERS in Path(frame.filename).resolve().parents
        for frame in traceback.extract_stack()
    )


def _has_mask_index(args: tuple[Any, ...]) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(
        isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
        for i in (indices if isinstance(indices, (list, tuple)) else ())
    )


@contextlib.contextmanager
def _watched_host_reads() -> Iterator[None]:
    originals = {name: getattr(torch.Tensor, name) for name in ("tolist", "numpy")}
    loop = threading.get_ident()  # the dispatch mode is per thread; these methods are not

    def refuse(name: str):
        def read(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != loop:  # the tracking thread, say: not the step loop
                return originals[name](tensor, *args, **kwargs)
            raise HostSyncError(_message(f"Tensor.{name}()", None))

        return read

    for name in originals:
        setattr(torch.Tensor, name, refuse(name))
    try:
        with _HostReadWatch():
            yield
    finally:
        for name, method in originals.items():
            setattr(torch.Tensor, name, method)


def _message(what: str, tb: Any) -> str:
    frames = traceback.extract_tb(tb) if tb is not None else traceback.extract_stack()
    return (
        f"host-device sync inside the training step loop: {what}, at {_culprit(frames)}; keep "
        "the value on the device (torch.where, a multiplication by the mask, a running sum) "
        "and read it after the epoch"
    )


def _culprit(frames: traceback.StackSummary) -> str:
    """The innermost frame outside torch and this module: the line that asked for the sync."""
    here = Path(__file__).resolve()
    for frame in reversed(frames):
        path = Path(frame.filename).resolve()
        if path != here and TORCH not in path.parents:
            shown = path.relative_to(PACKAGE.parent) if PACKAGE.parent in path.parents else path
            return f"{shown}:{frame.lineno} ({frame.name})"
    return "an unknown line"
