# Two commands a new user relies on: `make demo` and `make test`. Both build .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/patrol demo

# Most tests wait on simulated vehicles and brokers rather than compute: two workers halve the
# wall time. Whole patrols (marker e2e) run first, alone, each needing the machine to itself.
PYTEST_ARGS ?= -n 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "e2e and not soak"
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) -m "not soak and not bench and not e2e"

bench: $(STAMP)
	for b in bench/*_bench.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info demo-out
