# Ensnif: `make demo` and `make test` are the two commands; everything else is for developers.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test proto lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ensnif demo

test: $(STAMP)
	@sh scripts/ensure_postgres.sh
	@sh scripts/ensure_netns.sh
	@sh scripts/ensure_chromium.sh
	@sh scripts/airflow_env.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=30

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ensnif_mpc coordinator party_node protocols
	$(BIN)/lint-imports

# Not a test: prints a table (about 10 minutes), then the load section: 50 small jobs at once
# (a few minutes; bench/load.py). E.g. make bench BENCH_ARGS="--quick", or "--load 0".
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .demo
