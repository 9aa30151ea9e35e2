# spikejit developer tasks. `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: help install demo check lint typecheck test test-fast golden bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml requirements/peers-nodeps.txt requirements/peers-deps.txt
	python3 -m venv $(VENV)
	$(PIP) install -q -e ".[test,examples,dev]"
	# Peer libraries (test oracles): --no-deps so they cannot replace torch or jax.
	$(PIP) install -q -r requirements/peers-deps.txt
	$(PIP) install -q --no-deps -r requirements/peers-nodeps.txt
	touch $@

install: $(VENV)/.installed ## create .venv and install spikejit with test extras and peers

demo: install ## run the main job on the bundled example model
	$(VENV)/bin/spikejit run

# The static checks run first: they take seconds, the suite minutes.
test: install check ## static checks, then the whole test suite (what CI runs)
	$(PY) -m pytest

test-fast: install ## the suite without tests marked slow
	$(PY) -m pytest -m "not slow"

golden: install ## rewrite golden IR files (review with git diff)
	$(PY) -m pytest tests/passes --update-golden

check: lint typecheck ## ruff and mypy (part of `make test`)

lint: install ## ruff over the package, the tests and the benchmarks (rules in pyproject.toml)
	$(VENV)/bin/ruff check spikejit tests benchmarks

# benchmarks/ is not part of the package (the package never imports it), so it is named here.
typecheck: install ## mypy over the package and the benchmarks (settings in pyproject.toml)
	$(VENV)/bin/mypy spikejit benchmarks

bench: install ## the benchmark suite
	$(PY) -m benchmarks

clean: ## remove the virtualenv
	rm -rf $(VENV)
