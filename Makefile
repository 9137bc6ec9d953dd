# Two commands set up and prove the project (see README):
#   make demo   install everything into .venv and run the smoke study with its report
#   make test   install (if needed), type-check the package and run the test suite
# The install also builds the structure networks' compiled time loop (one line says where, or
# why not: without a C++ compiler they run the PyTorch path, the same function, slower).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test test-slow install bench lint clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[dev,tracking]"
	$(PY) -m sparsernn.nn.native
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/sparsernn reproduce --profile smoke --out runs/smoke

test: install
	$(PY) -m mypy
	$(PY) -m pytest -q

# The tests marked slow (a real Ray cluster, long trainings): deselected by `make test`.
test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) -m sparsernn.bench

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
