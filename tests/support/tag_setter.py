"""One of many writers racing to write the same new experiment-level rows
(tests/tracking/test_registry_workers.py): open the store, say "ready", wait for the go file,
then write each of them in the same order as every other writer, through calibexp's call or,
with ``--raw``, through MLflow's own (to show the race the former survives).

- experiment tags ``race.kNN`` set to this writer's name (``set_experiment_tag``);
- with ``--datasets``, datasets ``race-NN`` logged as inputs of a run of this writer's own
  (``log_inputs``).

    python -m tests.support.tag_setter <experiment id> <rows> <go file> [--raw] [--datasets]
        [--fork N]

With ``--fork N`` the process imports once and forks N writers named ``setter-0`` ..
``setter-N-1`` (``tests.support.claimant.fork_contenders``: real processes, each with its own
store connection, started from one go file); it prints "ready" once all are, then one JSON
list of their exit statuses and outputs.
"""

import os
import sys

from mlflow.entities import Dataset, DatasetInput

from calibexp.tracking.store import log_inputs, open_store, set_experiment_tag
from tests.support.claimant import fork_contenders, forked_hosts, wait_for_go


def contend(experiment: str, rows: int, go: str) -> None:
    raw = "--raw" in sys.argv
    client = open_store().raw  # no patient retries: only the lost insert is under test
    name = os.environ["CALIBEXP_HOST"]
    run_id = client.create_run(experiment, run_name=name).info.run_id
    print("ready", flush=True)
    wait_for_go(go, 0.0005)
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


def main() -> None:
    experiment, rows, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    hosts = forked_hosts("setter")
    if hosts is None:
        contend(experiment, rows, go)
    else:
        sys.exit(fork_contenders(hosts, lambda: contend(experiment, rows, go)))


if __name__ == "__main__":
    main()
