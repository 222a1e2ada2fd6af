# The README's commands. Each target sets up what it needs first (a .venv with calibexp and its
# test extras); nothing else has to be installed by hand.
VENV ?= .venv
PYTHON ?= python3
# mlflow run's local env manager runs `python ...` from PATH: the venv must come first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db

.PHONY: install demo test test-fast lint ui bench bench-gpu screenshots clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test,lint]"
	touch $@

demo: install  ## train the embedded default (digits, small CNN, CE) into ./mlflow.db
	mlflow run . -e train --env-manager local

test: install  ## the whole test suite, CPU only
	python -m pytest

test-fast: install  ## the development loop: every test not marked slow (about 3 minutes)
	python -m pytest -m "not slow"

lint: install  ## ruff: the lint rules and the formatting, as CI checks them
	ruff check .
	ruff format --check .

ui: install  ## the MLflow UI on the same store: http://127.0.0.1:5000
	mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

bench: install  ## every CPU benchmark script, one after the other (about 20 minutes on 2 CPU cores)
	set -e; for script in $(filter-out benchmarks/gpu.py,$(wildcard benchmarks/*.py)); do \
		echo "== $$script"; python $$script; done

bench-gpu: install  ## the GPU benchmark (one GPU, at most ~8 minutes): gpu-results.json
	python benchmarks/gpu.py --out gpu-results.json

# Needs Debian's Chromium first (apt-get install chromium: /usr/bin/chromium); Playwright drives
# it, it downloads no browser. Trains the demo losses and the smoke study into a temporary store.
screenshots: install  ## real MLflow UI and optuna-dashboard screenshots into docs/images/ (~4 min)
	$(VENV)/bin/python -m pip install --quiet -e ".[screenshots]"
	python scripts/ui_screenshots.py --out docs/images

clean:
	rm -rf $(VENV) mlflow.db mlruns mlartifacts
