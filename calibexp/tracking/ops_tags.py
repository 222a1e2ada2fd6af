"""The tags calibexp's machinery writes for itself, all under one prefix, ``calibexp.ops.``: who
holds a run (host, pid, where), its lease and heartbeat per attempt, the attempt and failure
counts, and the tokens that make creation and claims idempotent. They are kept apart from the
tags a researcher filters and groups on (``calibexp.loss``, ``calibexp.dataset``,
``calibexp.model``, ``calibexp.seed``, ``calibexp.run_key``, ``calibexp.study``,
``calibexp.trial_state``, …), so the run page's tag list and the run table's column chooser show
those first and the operational ones together, under one name."""

from __future__ import annotations

OPS_PREFIX = "calibexp.ops."
HOST_TAG = OPS_PREFIX + "host"  # CALIBEXP_HOST or the host name of the worker
PID_TAG = OPS_PREFIX + "pid"
WHERE_TAG = OPS_PREFIX + "where"  # the machine identity a dead pid is judged on
ATTEMPT_TAG = OPS_PREFIX + "attempt"  # 1, then one more per takeover
FAILURES_TAG = OPS_PREFIX + "failures"  # attempts that died or failed
CLAIM_TOKEN_TAG = OPS_PREFIX + "claim_token"
CREATE_TOKEN_TAG = OPS_PREFIX + "create_token"
LAST_WORKER_TAG = OPS_PREFIX + "last_worker"  # experiment tag: the last host that claimed


def lease_tag(attempt: int) -> str:
    """The lease of attempt ``attempt``: JSON with host, pid, where, store time and heartbeat."""
    return f"{OPS_PREFIX}lease.{attempt}"
