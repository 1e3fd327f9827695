PYTHON ?= python3
VENV ?= .venv
PY = $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test unit lint images agents engine bench helper

# Everything a fresh machine lacks: Debian packages (installed when run as
# root, named otherwise), then mux with its proxy engine and test tools in a
# virtualenv ($(VENV)), and `mux` linked onto PATH.
install:
	PYTHON='$(PYTHON)' bash tests/system-deps.sh
	PYTHON='$(PYTHON)' VENV='$(VENV)' bash scripts/install.sh

$(PY):
	@echo "no virtualenv in $(VENV): run \`make install\` first" >&2; exit 1

# The whole suite on a real engine (started here if none answers).
test: $(PY) engine images agents
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Only the fast tests: no engine needed.
unit: $(PY)
	$(PY) -m pytest -q tests/unit tests/cli $(PYTEST_ARGS)

engine:
	bash tests/engine.sh

images: engine
	bash tests/images/build.sh

# The real Claude Code and Codex clients from npm, cached, for the agent tests.
agents:
	bash tests/agents.sh

lint: $(PY)
	$(PY) -m ruff check mux tests bench
	$(PY) -m mypy mux

# The static helpers: `mux forward`'s (helper/forward.c) and the egress relay (helper/relay.c).
helper: $(PY)
	PYTHON='$(PY)' bash helper/build.sh
	PYTHON='$(PY)' bash helper/build.sh '' relay

bench: $(PY) engine images
	$(PY) bench/run_all.py
