# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench consistency install clean lint

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,compile]'
	$(BIN)/lifecycle compile > $(VENV)/compile.log 2>&1 && tail -n1 $(VENV)/compile.log \
	  || echo "make: the per-record modules were not compiled (see $(VENV)/compile.log); their sources are used" >&2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lifecycle demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/lifecycle bench

# The full consistency run (issue 8): every scenario, 300 accounts, 10 kill -9s. CI runs a short
# version as tests/integration/test_consistency.py.
consistency: $(STAMP)
	$(BIN)/lifecycle verify --json lifecycle-data/verify/result.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache lifecycle-data pipeline/_compiled
