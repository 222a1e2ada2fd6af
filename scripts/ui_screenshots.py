"""Real screenshots of the MLflow UI and optuna-dashboard for docs/images/, from real demo runs.

    make screenshots                     # = the two lines below, in the checkout's .venv
    pip install -e ".[screenshots]"      # playwright and optuna-dashboard (no browser download)
    python scripts/ui_screenshots.py --out docs/images

Needs Debian's Chromium (``apt-get install chromium``: /usr/bin/chromium), driven headless through
Playwright's Python API; ``playwright install`` is never run. In a fresh work directory (default:
a new temporary one) it trains the digits demo with cross-entropy, focal and Brier losses
(``entrypoints/train.py``; --seeds 2 gives each loss's group two runs) and runs the smoke study
(``entrypoints/study.py --spec studies/smoke.yaml``) into a SQLite MLflow store and a SQLite
Optuna storage there, starts ``mlflow server`` and ``optuna-dashboard`` on free local ports and
shoots, at a desktop viewport:

    run_table_by_loss.png        the demo experiment's run table, grouped by the tag calibexp.loss
    run_page.png                 a run's overview: headline table, test metrics, params
    diagram.png                  plots/reliability_test_before_after.png in the artifact viewer
    study_parent.png             the study's parent run (study-smoke): space.* and study.* params
    optuna_dashboard_studies.png optuna-dashboard's study list (the one study, smoke)
    optuna_dashboard.png         the study's page: the history plot, its axis named val/nll

Every shot waits for the page's network to go quiet and for the text it is about; one that never
appears stops the script with a one-line error. The servers are stopped at the end, whatever
happens. About 2-3 minutes on 2 idle CPU cores, most of it training (~25 s a run; more when the
cores are shared); a --workdir that already holds the runs trains nothing again (the run
registry says they are done), which makes re-shooting quick.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOSSES = ("ce", "focal", "brier")
RUN_PAGE_RUN = "digits-small_cnn-focal-s0"  # a run whose calibrators visibly change ECE
DIAGRAM = "plots/reliability_test_before_after.png"
STUDY_SPEC = "studies/smoke.yaml"
STUDY_RUN = "study-smoke"
# Run-table columns added for the grouped shot (the UI sorts metric columns by name), and the
# default columns taken out to make room (Source is always train.py, Models always empty).
TABLE_METRICS = ("test/acc", "test/ece_15", "test/nll", "test_ts/ece_15", "ts/temperature")
TABLE_HIDDEN = ("Source", "Models")

# Preferences of the MLflow UI (its localStorage keys, as 3.17's bundle names them), set before
# the app loads: the "Model training" side of its GenAI / Model training switch (a fresh
# browser starts on GenAI, whatever the experiment's mlflow.experimentKind), the assistant panel
# closed, and no telemetry (its shared worker's request never completes, so the page never goes
# network-idle, and there is no internet to send it to anyway).
MLFLOW_UI_PREFS = """
for (const [key, value] of Object.entries({
  'mlflow.workflowType_v1': 'machine_learning',
  'mlflow.assistant.panelOpen_v1': false,
  'mlflow.assistant.fab.autoOpenedOnFirstLoad_v1': true,
  'mlflow.settings.telemetry.enabled_v1': false,
  'mlflow.telemetry.info.alert.dismissed_v1': true,
})) window.localStorage.setItem(key, JSON.stringify(value));
"""


class ShotError(Exception):
    """A one-line reason the screenshots could not be taken."""


def log(message: str) -> None:
    print(f"ui_screenshots: {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tool(name: str) -> str:
    """A console script of the running interpreter's environment, else one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise ShotError(f"{name} not found; pip install -e '.[screenshots]'")
    return found


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_step(argv: list[str], workdir: Path, env: dict[str, str], logname: str) -> None:
    """One project command, its output in workdir/logs/; a failure is a one-line error."""
    logfile = workdir / "logs" / f"{logname}.log"
    started = time.monotonic()
    with logfile.open("w") as out:
        code = subprocess.call(argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        print(tail(logfile), file=sys.stderr)
        raise ShotError(f"{' '.join(argv[1:3])} ... exited {code} (log: {logfile})")
    log(f"{logname}: {time.monotonic() - started:.0f} s")


def start_server(argv: list[str], workdir: Path, env: dict[str, str], logname: str):
    logfile = (workdir / "logs" / f"{logname}.log").open("w")
    # its own process group: mlflow server runs uvicorn as a child, stopped with it
    proc = subprocess.Popen(
        argv, cwd=workdir, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
    )
    proc.logpath = Path(logfile.name)  # type: ignore[attr-defined]
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(tail(proc.logpath), file=sys.stderr)  # type: ignore[attr-defined]
            raise ShotError(f"{what} exited {proc.returncode} before answering at {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise ShotError(f"{what} did not answer at {url} within {timeout_s:.0f} s")


def prepare_data(workdir: Path, env: dict[str, str], seeds: int, storage: str) -> None:
    # The project's commands run in the work directory, so the store's artifacts (./mlruns,
    # MLflow's default root beside a SQLite store) land there, not in the checkout; configs/
    # and studies/ are links to the checkout's, so the runs name them as usual.
    for folder in ("configs", "studies"):
        link = workdir / folder
        if not link.exists():
            link.symlink_to(REPO / folder, target_is_directory=True)
    for seed in range(seeds):
        for loss in LOSSES:
            run_step(
                [
                    sys.executable,
                    str(REPO / "entrypoints" / "train.py"),
                    "--config",
                    f"configs/digits/small_cnn/{loss}.yaml",
                    f"seed={seed}",
                    "train.progress=false",
                ],
                workdir,
                env,
                f"train-{loss}-s{seed}",
            )
    run_step(
        [
            sys.executable,
            str(REPO / "entrypoints" / "study.py"),
            "--spec",
            STUDY_SPEC,
            "--storage",
            storage,
        ],
        workdir,
        env,
        "study-smoke",
    )


def find_ids(tracking_uri: str) -> dict[str, str]:
    """Experiment and run ids the shots open, read from the store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)

    def one_run(name: str) -> tuple[str, str]:
        found = client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            filter_string=f"attributes.run_name = '{name}' and attributes.status = 'FINISHED'",
            max_results=1,
        )
        if not found:
            raise ShotError(f"no FINISHED run named {name} in {tracking_uri}")
        return found[0].info.experiment_id, found[0].info.run_id

    demo_experiment, run_id = one_run(RUN_PAGE_RUN)
    study_experiment, study_run = one_run(STUDY_RUN)
    return {
        "demo_experiment": demo_experiment,
        "run": run_id,
        "study_experiment": study_experiment,
        "study_run": study_run,
    }


class Shooter:
    """Opens pages in one headless Chromium, waits for what each shows, writes the PNGs."""

    def __init__(self, browser, out: Path, width: int, height: int, tall: int, timeout_s: float):
        self.out, self.width, self.height, self.tall = out, width, height, tall
        self.timeout_ms = timeout_s * 1000
        self.context = browser.new_context(
            viewport={"width": width, "height": height}, device_scale_factor=1
        )
        self.context.set_default_timeout(self.timeout_ms)
        self.shot_name = ""
        self.url = ""

    def open(self, shot_name: str, url: str, tall: bool = False):
        self.shot_name, self.url = shot_name, url
        page = self.context.new_page()
        page.set_viewport_size({"width": self.width, "height": self.tall if tall else self.height})
        page.goto(url, wait_until="domcontentloaded")
        self.settle(page)
        return page

    def settle(self, page) -> None:
        """Network idle (500 ms without a request), bounded: a page that polls never gets
        there, and the text waits that follow are what decide."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            page.wait_for_load_state("networkidle", timeout=min(self.timeout_ms, 15000))
        except PlaywrightTimeout:
            pass

    def expect(self, locator, what: str) -> None:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            # the first visible match: a hidden copy (a collapsed menu's label) does not count
            locator.filter(visible=True).first.wait_for(state="visible", timeout=self.timeout_ms)
        except PlaywrightTimeout:
            raise ShotError(
                f"{self.shot_name}: {what} never appeared at {self.url} "
                f"within {self.timeout_ms / 1000:.0f} s"
            ) from None

    def save(self, page, name: str) -> None:
        self.settle(page)
        page.mouse.move(self.width - 2, 2)  # no hover highlight on a row
        page.wait_for_timeout(500)  # let the last re-render and any transition finish
        path = self.out / name
        page.screenshot(path=str(path))
        page.close()
        log(f"wrote {path}")


def set_column(page, tree, name: str, shown: bool) -> None:
    """Tick or untick a column in the run table's Columns tree (typing its name in the
    tree's search first, as a user would: the tree is virtualised)."""
    search = page.get_by_placeholder("Search columns")
    search.fill(name)
    node = tree.locator(
        "xpath=.//div[contains(@class, 'treenode')]"
        f"[.//span[@title][normalize-space(string(.))='{name}']]"
    ).first
    node.wait_for(state="visible")
    checked = "checkbox-checked" in (node.get_attribute("class") or "")
    if checked != shown:
        node.locator("xpath=.//span[@title]").first.click()
    search.fill("")


def shoot_mlflow(shooter: Shooter, base: str, ids: dict[str, str]) -> None:
    ml = "workflowType=machine_learning"

    # a. the run table, grouped by the loss, with the test metrics as columns
    page = shooter.open(
        "run_table_by_loss.png", f"{base}/#/experiments/{ids['demo_experiment']}/runs?{ml}"
    )
    shooter.expect(page.get_by_text(RUN_PAGE_RUN, exact=True), f"the run {RUN_PAGE_RUN}")
    group_by = page.get_by_role("button", name="Group by")
    shooter.expect(group_by, "the Group by control")
    group_by.click()
    option = page.get_by_role("menuitemcheckbox", name="calibexp.loss", exact=True)
    shooter.expect(option, "calibexp.loss in the Group by menu")
    option.click()
    page.keyboard.press("Escape")
    for loss in LOSSES:
        shooter.expect(page.get_by_text(f"Group: {loss}", exact=True), f"the group row of {loss}")
    page.get_by_role("button", name="Columns", exact=True).click()
    tree = page.get_by_test_id("column-selector-tree")
    shooter.expect(tree, "the Columns selector")
    for name in TABLE_HIDDEN:
        set_column(page, tree, name, shown=False)
    for name in TABLE_METRICS:
        set_column(page, tree, name, shown=True)
    page.keyboard.press("Escape")
    for name in TABLE_METRICS:
        shooter.expect(page.get_by_role("columnheader").filter(has_text=name), f"the column {name}")
    shooter.save(page, "run_table_by_loss.png")

    # b. a run's overview: the headline table (the description), test metrics, params
    run_url = f"{base}/#/experiments/{ids['demo_experiment']}/runs/{ids['run']}"
    page = shooter.open("run_page.png", run_url, tall=True)
    shooter.expect(page.get_by_text(RUN_PAGE_RUN, exact=True), "the run's name")
    more = page.get_by_text("Show more", exact=True)
    shooter.expect(more, "the description's Show more")
    more.click()
    shooter.expect(page.get_by_text("temperature_grid_ece", exact=False), "the headline table")
    page.get_by_placeholder("Search metrics").fill("test")
    shooter.expect(page.get_by_text("test_ts/ece_15", exact=True), "the metric test_ts/ece_15")
    shooter.expect(page.get_by_text("optim.lr", exact=True), "the parameter optim.lr")
    shooter.save(page, "run_page.png")

    # c. the before/after reliability diagram in the artifact viewer
    page = shooter.open("diagram.png", f"{run_url}/artifacts/{DIAGRAM}", tall=True)
    shooter.expect(page.get_by_text(DIAGRAM, exact=True), f"the artifact header {DIAGRAM}")
    image = page.locator(f"img[alt='{DIAGRAM}']")
    shooter.expect(image, "the diagram image")
    try:
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0",
            arg=image.first.element_handle(),
            timeout=shooter.timeout_ms,
        )
    except Exception:
        raise ShotError(f"diagram.png: {DIAGRAM} never loaded at {shooter.url}") from None
    shooter.save(page, "diagram.png")

    # d. the study's parent run: its description and the spec as params
    page = shooter.open(
        "study_parent.png",
        f"{base}/#/experiments/{ids['study_experiment']}/runs/{ids['study_run']}",
        tall=True,
    )
    shooter.expect(page.get_by_text(STUDY_RUN, exact=True), f"the run {STUDY_RUN}")
    for param in ("study.objectives", "space.loss.gamma", "space.optim.lr"):
        shooter.expect(page.get_by_text(param, exact=True), f"the parameter {param}")
    shooter.save(page, "study_parent.png")


def shoot_dashboard(shooter: Shooter, base: str) -> None:
    page = shooter.open("optuna_dashboard_studies.png", f"{base}/dashboard/")
    shooter.expect(page.get_by_text("smoke", exact=False), "the study smoke in the study list")
    shooter.expect(page.get_by_text("Direction: MINIMIZE", exact=True), "the study's direction")
    shooter.save(page, "optuna_dashboard_studies.png")

    page = shooter.open("optuna_dashboard.png", f"{base}/dashboard/studies/1")
    shooter.expect(page.get_by_text("History", exact=True), "the History plot")
    # plotly's axis title (SVG text): the objective's name from set_metric_names
    shooter.expect(
        page.locator("svg text.ytitle").filter(has_text="val/nll"), "the y axis title val/nll"
    )
    shooter.expect(page.locator("svg .scatterlayer .point"), "the trials' points")
    shooter.save(page, "optuna_dashboard.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images", help="folder for the PNGs")
    parser.add_argument(
        "--workdir",
        default="",
        help="folder for the MLflow store, the Optuna storage and logs (default: a new temp dir)",
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive")
    parser.add_argument("--seeds", type=int, default=1, help="runs per loss (seeds 0..N-1)")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument(
        "--tall-height", type=int, default=1400, help="viewport height for the run pages"
    )
    parser.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for each expected element"
    )
    args = parser.parse_args()

    started = time.monotonic()
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        log("playwright is not installed; pip install -e '.[screenshots]'")
        return 2
    chromium = Path(args.chromium)
    if not chromium.exists():
        log(f"{chromium} not found; install Debian's Chromium: apt-get install chromium")
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="calibexp-shots-")).resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    log(f"work directory {workdir}")

    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")
    }
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        MLFLOW_DISABLE_TELEMETRY="true",  # no internet to send it to
        DO_NOT_TRACK="true",
    )

    servers: list[subprocess.Popen] = []
    try:
        prepare_data(workdir, env, args.seeds, storage)
        ids = find_ids(tracking_uri)

        mlflow_port, dashboard_port = free_port(), free_port()
        mlflow_base = f"http://127.0.0.1:{mlflow_port}"
        dashboard_base = f"http://127.0.0.1:{dashboard_port}"
        mlflow_server = start_server(
            [
                tool("mlflow"),
                "server",
                "--backend-store-uri",
                tracking_uri,
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
            ],
            workdir,
            env,
            "mlflow-server",
        )
        servers.append(mlflow_server)
        dashboard = start_server(
            [
                tool("optuna-dashboard"),
                storage,
                "--host",
                "127.0.0.1",
                "--port",
                str(dashboard_port),
            ],
            workdir,
            env,
            "optuna-dashboard",
        )
        servers.append(dashboard)
        wait_http(f"{mlflow_base}/health", mlflow_server, "mlflow server", 120)
        wait_http(f"{dashboard_base}/api/studies", dashboard, "optuna-dashboard", 120)
        log(f"mlflow server at {mlflow_base}, optuna-dashboard at {dashboard_base}")

        with sync_playwright() as playwright:
            try:
                browser = playwright.chromium.launch(
                    executable_path=str(chromium),
                    headless=True,
                    args=["--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars"],
                )
            except PlaywrightError as error:
                first = str(error).strip().splitlines()[0]
                raise ShotError(f"Playwright could not start {chromium}: {first}") from None
            log(f"Chromium {browser.version}")
            try:
                shooter = Shooter(
                    browser, out, args.width, args.height, args.tall_height, args.timeout
                )
                shooter.context.add_init_script(MLFLOW_UI_PREFS)
                shoot_mlflow(shooter, mlflow_base, ids)
                shoot_dashboard(shooter, dashboard_base)
            finally:
                browser.close()
    except ShotError as error:
        log(f"error: {error}")
        return 1
    finally:
        for proc in servers:
            stop_server(proc)
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
