"""One of many writers racing to write the same new experiment-level rows
(tests/tracking/test_registry_workers.py): open the store, say "ready", wait for the go file,
then write each of them in the same order as every other writer, through calibexp's call or,
with ``--raw``, through MLflow's own (to show the race the former survives).

- experiment tags ``race.kNN`` set to this writer's name (``set_experiment_tag``);
- with ``--datasets``, datasets ``race-NN`` logged as inputs of a run of this writer's own
  (``log_inputs``).

    python -m tests.support.tag_setter <experiment id> <rows> <go file> [--raw] [--datasets]
"""

import os
import sys
import time

from mlflow.entities import Dataset, DatasetInput

from calibexp.tracking.store import log_inputs, open_store, set_experiment_tag


def main() -> None:
    experiment, rows, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    raw = "--raw" in sys.argv
    client = open_store().raw  # no patient retries: only the lost insert is under test
    name = os.environ["CALIBEXP_HOST"]
    run_id = client.create_run(experiment, run_name=name).info.run_id
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.0005)
    for i in range(rows):
        if "--datasets" in sys.argv:
            dataset = Dataset(f"race-{i:02d}", f"digest{i:02d}", "local", '{"uri": "race"}')
            inputs = [DatasetInput(dataset)]
            if raw:
                client.log_inputs(run_id, datasets=inputs)
            else:
                log_inputs(client, run_id, inputs)
        elif raw:
            client.set_experiment_tag(experiment, f"race.k{i:02d}", name)
        else:
            set_experiment_tag(client, experiment, f"race.k{i:02d}", name)
    print("done", flush=True)


if __name__ == "__main__":
    main()
