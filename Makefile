# Every target sets up .venv itself (pinned by requirements.lock), so a fresh clone needs only Python >= 3.10.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup train test test-fast lint format bench faults clean

# numba's cache of the fused kernel (kernellab/stencil.py): compiled once here, so that no run
# pays for it; again whenever the kernel's source changes (numba's cache is keyed on its file).
WARM := $(VENV)/.numba-warm

setup: $(STAMP) $(WARM)

$(STAMP): requirements.lock pyproject.toml
	@echo "Setting up $(VENV) from requirements.lock (first run: a minute or two) ..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(WARM): $(STAMP) src/kernellab/_stencil_numba.py
	$(PY) -m kernellab.stencil
	touch $(WARM)

train: $(STAMP) $(WARM)
	$(PY) train.py $(ARGS)

# Tests run in parallel (pytest-xdist), TEST_WORKERS processes: most slow tests wait on processes
# they start, so more workers than cores still pays. Tests that share something run on one worker
# one after another (`pytest.mark.xdist_group`: a module's shared sweep, a TensorBoard server).
# TEST_WORKERS=0: one process, as plain pytest.
TEST_WORKERS ?= 6
XDIST = $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadgroup)

test: $(STAMP) $(WARM)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(STAMP) $(WARM)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -r bench/requirements.txt
	touch $(BENCH_STAMP)

# About 7 minutes on 2 cores; writes bench/RESULTS.md (BENCH_ARGS="--quick" or "--only step,cold":
# bench/out/RESULTS.md).
bench: $(BENCH_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# Every bad input and fault of README's Reliability table, tried as a user would; prints a table.
faults: $(STAMP)
	$(PY) scripts/faults.py

clean:
	rm -rf $(VENV) outputs/*/ multirun .pytest_cache
