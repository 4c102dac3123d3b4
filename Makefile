# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck bench clean pi-test

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/doorwatch demo $(if $(FOR),--for $(FOR),)

# Most of the slow tests wait on real processes (brokers, servers, agents, a browser), not
# on the CPU, so two workers shorten the run even on CI's two cores. Tests are handed out
# one at a time in collection order (tests/conftest.py puts files holding a slow test
# first); a file in its WHOLE_FILES (a built .deb, fresh venvs, a RabbitMQ node, a
# fuzz rig) goes whole to one worker, so its module fixture is built once.
# PYTEST_WORKERS=0 runs everything in this one process.
PYTEST_WORKERS ?= 2

test: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

# The agent installed from its .deb in an arm64 Debian trixie root under qemu-user
# (root only; first run builds the root, later runs reuse it from /var/cache/doorwatch).
# CPU-heavy (everything in the root is emulated): niced, and not part of `make test`.
pi-test: venv
	nice tests/pi/run.sh

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) demo-data test-artifacts bench/results .pytest_cache .mypy_cache .ruff_cache
