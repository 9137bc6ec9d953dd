# Two commands set up and prove the project (see README):
#   make demo   install everything into .venv and run the smoke study with its report
#   make test   install (if needed), type-check the package and run the test suite
# The install also builds the structure networks' compiled time loop and the sparse recurrent
# layer (one line each says where, or why not: without a C++ compiler they run the PyTorch
# path, the same function, slower).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test test-slow install bench lint clean docs results-full results-methods results-tasks results-lm

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[dev,tracking]"
	$(PY) -m sparsernn.nn.native
	$(PY) -m sparsernn.nn.sparse_kernel
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/sparsernn reproduce --profile smoke --out runs/smoke

# Tests run in TEST_WORKERS processes (pytest-xdist; 2 = the CI machine's cores). `make test`
# on the idle 2-core VM on 2026-12-08: 5 min 29 s serially, 3 min 8 s with 2 workers (mypy
# included). TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2

test: install
	$(PY) -m mypy
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# The tests marked slow (a real Ray cluster, long trainings): deselected by `make test`.
test-slow: install
	$(PY) -m pytest -q -m slow

# Every results page (docs/*.md, README's measured section) from results/ only; tests/test_docs.py
# fails when a committed page differs from what this writes.
docs: install
	$(PY) docs/generate.py

# The data behind the pages: each runs (or resumes) a study and exports it to results/.
# results-full is the study's whole protocol: hours on 2 cores (results/full/manifest.json
# records the unit-hours of the last run), resumable (rerun to continue). results/full holds
# the complete run;
# rerunning this on a fresh clone reproduces it from scratch and overwrites it. A partial run
# committed as a resumable export (results/full/resume) would be restored first.
results-full: install
	@if [ ! -e runs/full/results.sqlite ] && [ -d results/full/resume ]; then \
		$(VENV)/bin/sparsernn restore results/full runs/full; fi
	$(VENV)/bin/sparsernn prune --seeds 3 --out runs/full
	$(VENV)/bin/sparsernn structure --seeds 1 --out runs/full
	$(VENV)/bin/sparsernn export runs/full results/full

results-methods: install
	$(VENV)/bin/sparsernn prune --config docs/methods.toml --out runs/methods
	$(VENV)/bin/sparsernn export runs/methods results/methods
	$(VENV)/bin/sparsernn prune --config docs/methods-static.toml --out runs/methods-static
	$(VENV)/bin/sparsernn export runs/methods-static results/methods-static

results-tasks: install
	OMP_NUM_THREADS=1 $(PY) docs/measure_tasks.py results/tasks

# The character-level language model (examples/char_lm.py) over methods, sparsities and 3 seeds:
# 27 models of about 80 s CPU each (results/lm/manifest.json), resumable (points.csv rows kept).
results-lm: install
	$(PY) examples/char_lm_grid.py --out results/lm --jobs 2

bench: install
	$(PY) -m sparsernn.bench

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
