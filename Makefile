# Two commands set everything up on a fresh machine with Python 3.11 and pip:
#   make demo   -- creates the environment and runs the DINA loop on the embedded default
#   make test   -- creates the environment if needed and runs the whole suite
#   make docs   -- serves the documentation site (docs/, mkdocs.yml) on http://127.0.0.1:8000
PYTHON ?= python3
VENV := .venv
UV := .tools/bin/uv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT := false
export NO_MKDOCS_2_WARNING := 1

.PHONY: env demo test docs lint bench clean

env: $(VENV)/.ready

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install -q uv

$(VENV)/.ready: pyproject.toml | $(UV)
	test -x $(PY) || $(UV) venv --seed --python $(PYTHON) $(VENV)
	# the explorer's browser test drives Debian's Chromium (installed as root when missing)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium chromium-driver)
	$(UV) pip install -q --python $(PY) "torch==$(TORCH_VERSION)"
	# bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set, every process (each test
	# subprocess, each Ray worker) would otherwise compile TensorFlow anew (~10 s)
	$(UV) sync --compile-bytecode --inexact --extra generate --extra viz --extra stats --extra explore --extra jax --extra grain --extra ray --extra docs --extra dev
	touch $@

demo: env
	$(VENV)/bin/dina demo

test: env
	$(VENV)/bin/ruff check .
	# the documentation site: a broken link or docstring reference fails the build
	$(VENV)/bin/mkdocs build --strict -q -d .site
	# two workers, a test module per worker at a time (module fixtures: the GCS server, the
	# Ray cluster, the app); the suite waits on subprocesses and servers half of its time
	$(PY) -m pytest -q -n 2 --dist loadfile

docs: env
	$(VENV)/bin/mkdocs serve

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: env
	for b in benchmarks/[a-z]*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .tools .site
