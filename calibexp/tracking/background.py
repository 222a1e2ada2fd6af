"""An ordered, single-thread queue for tracking calls, so the training loop never waits on the
store.

MLflow's own async logging (``synchronous=False``) covers metrics, params and tags but not
artifacts, and gives no order between them. Resume depends on order: an epoch's checkpoint is
uploaded *before* its metrics are logged, so a run killed in between can be resumed with every
epoch logged exactly once. One worker thread running jobs in submission order gives that.
A failed job is re-raised on the next ``submit`` or ``flush``, never swallowed, and the jobs
queued after it are skipped: a later epoch's metrics never land when an earlier one's failed
(a resume relies on the logged epochs being a prefix).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class OrderedWorker:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="calibexp-tracking")
        self._pending: list[Future] = []
        self._failed: BaseException | None = None

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._raise_failures(block=False)
        self._pending.append(self._pool.submit(self._run, fn, *args, **kwargs))

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._failed is not None:
            raise self._failed  # an earlier job failed: nothing after it is written
        try:
            return fn(*args, **kwargs)
        except BaseException as err:
            self._failed = err
            raise

    def flush(self) -> None:
        """Wait for every queued job; re-raise the first failure."""
        self._raise_failures(block=True)

    def close(self, cancel: bool = False) -> None:
        """Stop the thread after the job it runs; with ``cancel``, drop the queued ones."""
        self._pool.shutdown(wait=True, cancel_futures=cancel)

    def _raise_failures(self, block: bool) -> None:
        still = []
        for future in self._pending:
            if block or future.done():
                future.result()  # re-raises the job's exception here, in the caller's thread
            else:
                still.append(future)
        self._pending = still
