# Two commands: `make run` (the whole system, locally) and `make test` (the whole suite).
# Each one does its own set-up first: Debian packages, the venv, the model artifact.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MODEL := var/models/efficientnet_lite0.keras
MOTO_PORT ?= 5000
export AWS_ENDPOINT_URL ?= http://127.0.0.1:$(MOTO_PORT)
export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing

.PHONY: run test setup system-packages

run: setup
	$(PY) manage.py runlocal

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

setup: system-packages $(VENV)/.installed $(MODEL)

# Debian packages, installed once, as root: chromium for the browser tests; packer (1.6.6)
# and systemd (systemd-analyze) for the worker image tests in tests/deploy.
system-packages:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v packer >/dev/null || missing="$$missing packer"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: requirements/*.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	touch $@

$(MODEL): $(VENV)/.installed
	$(PY) manage.py build_model
