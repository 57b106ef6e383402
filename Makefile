# The only entry points humans and CI need. The environment is created here, from the lock file.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NPM    ?= $(shell command -v npm)
NODE_STAMP := node_modules/.installed
# Test processes (pytest-xdist). Most of the suite waits on simulators and subprocesses rather
# than computing, so four workers keep two cores busy; `make test WORKERS=0` runs serially.
WORKERS ?= 4

.PHONY: install node demo test check lint typecheck imports schemas bench lock sandbox clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# Miniflare (and the workerd binary it brings) from package-lock.json, for the dispatch Worker.
# Install scripts are not needed: the workerd binary ships inside its registry package.
$(NODE_STAMP): package.json package-lock.json
ifeq ($(NPM),)
	@echo "note: npm not found: the Worker runtime (miniflare/workerd) is not installed; its tests skip"
else
	$(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)
endif

node: $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

demo: install
	$(BIN)/python -m reconciler.demo

test: install
	$(BIN)/pytest -q -n $(WORKERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy reconciler

imports: install
	$(BIN)/lint-imports --no-cache

check: lint typecheck imports test

schemas: install
	$(BIN)/reconciler schemas --out schemas

bench: install
	$(BIN)/python -m bench.run_all

sandbox: install
	$(BIN)/reconciler sandbox up

lock: install
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock.new && mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .sandbox .demo
