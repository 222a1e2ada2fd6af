"""One of many writers racing to set the same new experiment tags
(tests/tracking/test_registry_workers.py): open the store, say "ready", wait for the go file,
then set each key to this writer's name, through calibexp's ``set_experiment_tag`` or, with
``--raw``, through MLflow's own call (to show the race the former survives).

    python -m tests.support.tag_setter <experiment id> <number of keys> <go file> [--raw]
"""

import os
import sys
import time

from calibexp.tracking.store import open_store, set_experiment_tag


def main() -> None:
    experiment, keys, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    client = open_store().raw  # no patient retries: only the lost insert is under test
    name = os.environ["CALIBEXP_HOST"]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.0005)
    for i in range(keys):
        if "--raw" in sys.argv:
            client.set_experiment_tag(experiment, f"race.k{i:02d}", name)
        else:
            set_experiment_tag(client, experiment, f"race.k{i:02d}", name)
    print("done", flush=True)


if __name__ == "__main__":
    main()
