"""One claimant process for the claim races (tests/tracking/test_registry_workers.py,
benchmarks/registry.py): open the store, prove it may write, say "ready", wait for the go file,
then try to claim every key (attempt 1) in order; prints the keys it won as JSON.

    python -m tests.support.claimant <experiment id> '<json list of keys>' <go file>
"""

import json
import os
import sys
import time

from calibexp.config import TrackingConfig
from calibexp.tracking.registry import Registry
from calibexp.tracking.store import open_store


def main() -> None:
    experiment, keys, go = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    registry = Registry(open_store(), experiment, TrackingConfig())
    registry.ensure_writable()
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    print(json.dumps([k for k in keys if registry.claim(k, 1)]), flush=True)


if __name__ == "__main__":
    main()
