# The only entry points humans and CI need. The environment is created here, from the lock file.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test check lint typecheck imports schemas bench lock sandbox clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m reconciler.demo

test: install
	$(BIN)/pytest -q

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .sandbox .demo
