# Two entry points: `make demo` and `make test`. Both set up .venv idempotently.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The torch/torchvision pair that installs from this machine's disk (PyPI's torchvision
# does not import beside the local CPU-only torch 2.13 wheel). GPU users may override.
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test venv system-deps lint typecheck pytest benchmark clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PAIR)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Debian packages: Chromium for the panel's browser tests.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

# Exit status 3: the dry-run finished and wrote its report, but not every pipette reached
# its target (the report says why); the demo still succeeds then.
demo: $(STAMP)
	$(VENV)/bin/patchpilot dry-run --config configs/sim-4.yaml --out reports/demo; \
	status=$$?; [ $$status -eq 0 ] || [ $$status -eq 3 ]

lint: $(STAMP)
	$(VENV)/bin/ruff check patchpilot tests benchmarks
	$(VENV)/bin/ruff format --check patchpilot tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy patchpilot

pytest: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider

test: lint typecheck pytest

clean:
	rm -rf $(VENV) reports .mypy_cache .ruff_cache
