"""The MLflow store as calibexp talks to it: reached or refused quickly, waited for when it goes
away mid-run, and asked what time it is.

- ``open_store()``: a client on MLflow's own URI resolution that has proven it can reach and
  use the store, within ~10 s. A network store is first probed with a plain TCP connect (5 s),
  because MLflow's HTTP client retries a refused connection for minutes. Once reached, the
  same client serves the whole process.
- The client is *patient* (``PatientClient``): every call retries transient failures
  (connection refused or reset, 5xx, a locked SQLite file) with capped exponential back-off for
  up to ``tracking.store_timeout_s``, so a server restarted mid-run is waited for while training
  goes on. MLflow's own HTTP retries are turned down to one, so that this loop, not a
  two-minute retry inside one call, decides how long to wait. ``create_run`` is the one call
  that is not blindly repeated (a lost answer would leave a second run): ``TrackedRun.create``
  retries it by a token.
- ``StoreClock``: the store's clock as this machine sees it. Leases are compared on it, so two
  workers whose clocks differ never disagree about whether a lease expired (the clock-skew
  trap of leases, Kleppmann, "How to do distributed locking", 2016).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from calibexp.errors import CalibexpError

T = TypeVar("T")
PROBE_TIMEOUT_S = 5.0
# Each call fails fast on a refused connection (one retry; MLflow's default is 7 with back-off,
# minutes in all): patient() decides how long to wait. The per-request timeout stays MLflow's
# (MLFLOW_HTTP_REQUEST_TIMEOUT, 120 s), which a 190 MB checkpoint upload needs.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


_clients: dict[str, "PatientClient"] = {}


def open_store() -> "PatientClient":
    """A client on ``MLFLOW_TRACKING_URI`` (else sqlite:///mlflow.db) that can read the store;
    probed once per process and URI, then reused (it waits out an outage instead)."""
    uri = mlflow.get_tracking_uri()
    if uri in _clients:
        return _clients[uri]
    _probe_network(uri)
    try:
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
    except MlflowException as err:
        raise CalibexpError(_explain(uri, err)) from None
    except Exception as err:  # noqa: BLE001 - any failure here means the store is unusable
        raise CalibexpError(
            f"cannot use the MLflow tracking store {redact(uri)}: {first_line(err)}; set "
            "MLFLOW_TRACKING_URI to a writable sqlite:///path.db or an http:// server"
        ) from None
    _clients[uri] = PatientClient(client)
    return _clients[uri]


class PatientClient:
    """An ``MlflowClient`` whose calls wait out a store that is away (``patient``)."""

    NOT_REPEATED = ("create_run",)

    def __init__(self, client: MlflowClient, timeout_s: float = 900.0) -> None:
        self.raw = client
        self.timeout_s = timeout_s
        self.up_since: float | None = None  # monotonic end of the last outage seen (None: none)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.raw, name)
        if not callable(attr) or name.startswith("_") or name in self.NOT_REPEATED:
            return attr

        def patiently(*args: Any, **kwargs: Any) -> Any:
            failed = []

            def once() -> Any:
                try:
                    return attr(*args, **kwargs)
                except Exception as err:
                    failed.append(transient(err))
                    raise

            result = patient(once, self.timeout_s)
            if any(failed):
                self.up_since = time.monotonic()
            return result

        return patiently


# What SQLAlchemy (PostgreSQL, SQLite) says when a second writer inserts a row the first one just
# inserted.
LOST_INSERT_MARKERS = ("duplicate key value violates unique constraint", "unique constraint failed")


def set_experiment_tag(client: Any, experiment_id: str, key: str, value: str) -> None:
    """``client.set_experiment_tag``, safe when many workers set the same new key at once.

    MLflow's SQL store writes an experiment tag as read-then-insert (SQLAlchemy ``merge``): two
    workers that both find the key absent both insert, and the loser is refused with a unique-key
    violation (BAD_REQUEST) although the tag now exists. Its second try finds the row and
    updates it.
    """
    retry_lost_insert(lambda: client.set_experiment_tag(experiment_id, key, value))


def log_inputs(client: Any, run_id: str, datasets: list[Any]) -> None:
    """``client.log_inputs``, safe when many workers log the same new dataset at once.

    MLflow's SQL store (``_log_inputs_impl``) looks the dataset up by (experiment, name,
    digest) and inserts it when absent: the first runs of several workers on one experiment and
    one split race there, and the losers are refused with a violation of ``dataset_pk``. The
    whole write was rolled back; its second try finds the dataset and links the run to it.
    """
    retry_lost_insert(lambda: client.log_inputs(run_id, datasets=datasets))


def retry_lost_insert(write: Callable[[], Any]) -> None:
    """Run ``write``, again when it lost a read-then-insert race to another writer (a few
    times: each loss means another writer's row now exists)."""
    for tries_left in reversed(range(4)):
        try:
            write()
            return
        except MlflowException as err:
            text = str(err).lower()
            if not tries_left or not any(marker in text for marker in LOST_INSERT_MARKERS):
                raise


def _probe_network(uri: str) -> None:
    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    if scheme not in DEFAULT_PORTS or not parsed.hostname:
        return
    port = parsed.port or DEFAULT_PORTS[scheme]
    try:
        with socket.create_connection((parsed.hostname, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        raise CalibexpError(
            f"cannot reach the MLflow tracking store {redact(uri)} ({parsed.hostname}:{port}: "
            f"{err.strerror or err}); check MLFLOW_TRACKING_URI and that the server is running"
        ) from None


def permission_denied(err: MlflowException) -> bool:
    """The server refused this user (HTTP 403), as opposed to being away or wrong."""
    return "403" in str(err) or err.error_code == "PERMISSION_DENIED"


def _explain(uri: str, err: MlflowException) -> str:
    text = str(err)
    if "401" in text or err.error_code == "UNAUTHENTICATED":
        return (
            f"the MLflow server {redact(uri)} requires a login (HTTP 401); set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    if permission_denied(err):
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "?")
        return (
            f"the MLflow server {redact(uri)} refused user '{user}' (HTTP 403): {first_line(err)}"
        )
    return (
        f"cannot use the MLflow tracking store {redact(uri)}: {first_line(err)}; set "
        "MLFLOW_TRACKING_URI to a writable sqlite:///path.db or an http:// server"
    )


def redact(uri: str) -> str:
    """The URI without its password, for tags and messages."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':')[0]}@{host}"
    return uri


TRANSIENT_MARKERS = (
    "failed with exception",  # MLflow's wrapper around a requests ConnectionError
    "max retries exceeded",
    "connection refused",
    "connection reset",
    "connection aborted",
    "remote end closed",
    "timed out",
    "database is locked",
    "server closed the connection",
    "could not connect",
    "response code 50",
    "error code 50",
    "temporarily_unavailable",
    "bad gateway",
    "service unavailable",
)


def transient(err: BaseException) -> bool:
    """A failure that waiting can cure: the store is down, restarting or busy."""
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    if isinstance(err, MlflowException) and err.error_code in (
        "TEMPORARILY_UNAVAILABLE",
        "REQUEST_LIMIT_EXCEEDED",
    ):
        return True
    text = str(err).lower()
    return any(marker in text for marker in TRANSIENT_MARKERS)


def patient(call: Callable[[], T], timeout_s: float, what: str = "the tracking store") -> T:
    """``call()``, retried while the store is unreachable, for at most ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    delay, warned = 0.5, False
    while True:
        try:
            return call()
        except Exception as err:  # noqa: BLE001 - classified below
            if not transient(err):
                raise
            if time.monotonic() + delay > deadline:
                raise CalibexpError(
                    f"{what} did not answer for {timeout_s:.0f} s (tracking.store_timeout_s): "
                    f"{first_line(err)}"
                ) from None
            if not warned:
                print(f"calibexp: {what} is not answering ({first_line(err)}); waiting", flush=True)
                warned = True
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


_clocks: dict[str, "StoreClock"] = {}


def store_clock(uri: str) -> "StoreClock":
    """One clock per store and process (its offset survives an outage)."""
    if uri not in _clocks:
        _clocks[uri] = StoreClock(uri)
    return _clocks[uri]


class StoreClock:
    """The store's time, estimated from this machine's clock plus an offset.

    For an ``mlflow server`` the offset is measured from the HTTP ``Date`` header of its
    ``/health`` answer (1 s resolution, taken at the midpoint of the request): every worker
    talking to one server then reads one clock, whatever its own says. A file or database URI
    is opened by this process itself, so its clock is this machine's (offset 0)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.offset_s = 0.0
        self.measure()

    def measure(self) -> None:
        if not self.uri.startswith(("http://", "https://")):
            return
        import requests

        try:
            sent = time.time()
            answer = requests.head(self.uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S)
            received = time.time()
            server = parsedate_to_datetime(answer.headers["Date"]).timestamp()
        except Exception:  # noqa: BLE001 - keep the last offset; the next beat measures again
            return
        # Date is truncated to the second: the server's clock read server..server+1.
        self.offset_s = server + 0.5 - (sent + received) / 2

    def now(self) -> float:
        return time.time() + self.offset_s
