"""How a step executes, not what it computes: torch.compile (``compiling``), the check that
the step loop never waits on the device (``syncs``) and a progress bar that does not make it
wait (``progress``)."""

from calibexp.execution.compiling import Compiler, compiler_for, eager
from calibexp.execution.progress import ProgressReadout
from calibexp.execution.syncs import HostSyncError, no_host_syncs

__all__ = [
    "Compiler",
    "HostSyncError",
    "ProgressReadout",
    "compiler_for",
    "eager",
    "no_host_syncs",
]
