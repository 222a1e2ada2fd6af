"""MLflow tracking: runs addressed by id, ordered background logging, checkpoints, liveness."""

from calibexp.tracking.run import TrackedRun, tracking_client

__all__ = ["TrackedRun", "tracking_client"]
