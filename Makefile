# FinCore: the two commands are `make demo` and `make test`. Every target installs what it needs
# on first use (a virtualenv in .venv, a separate one for checkov, Debian's Chromium) and is fast
# once installed.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_VERSION := 3.3.30
CHROMIUM := /usr/bin/chromium
WRK := /usr/bin/wrk
VALGRIND := /usr/bin/valgrind

.PHONY: demo test check run bench reset format lint types contracts pytest install checkov-install chromium wrk valgrind clean

demo: $(STAMP) chromium ## start everything, run the scripted demo, print a summary, stop
	$(PY) -m fincore demo

test: check checkov-install chromium pytest ## what CI runs: format, lint, types, contracts, tests

check: format-check lint types contracts ## the fast static pass

run: $(STAMP) ## start every process in the foreground (Ctrl-C stops all)
	$(PY) -m fincore run

bench: $(STAMP) wrk valgrind ## every bench/ script, one table (HTTP load from wrk, a C client)
	$(PY) -m bench

reset: $(STAMP) ## wipe local state under var/
	$(PY) -m fincore reset --yes

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[all,dev]'
	@touch $@

checkov-install: $(CHECKOV_STAMP)

$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	@touch $@

# A Debian package a target needs: installed when running as root, else how to install it.
define apt_install
	@if [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null); \
	else \
	  echo "$(1) is missing: run 'sudo apt-get install -y $(1)' ($(2))"; exit 1; \
	fi
endef

chromium: $(CHROMIUM)

$(CHROMIUM):
	$(call apt_install,chromium,browser tests need it)

# The HTTP benchmarks load the servers with wrk: a Python client on the same two cores would
# measure itself rather than the server (bench/vault.py falls back to one only without wrk).
wrk: $(WRK)

$(WRK):
	$(call apt_install,wrk,HTTP benchmarks need it)

# bench/instructions.py counts instructions with valgrind's callgrind (timings drift on a VM).
valgrind: $(VALGRIND)

$(VALGRIND):
	$(call apt_install,valgrind,bench/instructions.py needs it)

format-check: $(STAMP)
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lint: $(STAMP)
	$(VENV)/bin/ruff check .

types: $(STAMP)
	$(VENV)/bin/mypy fincore audit cde noncde psp_sandbox

contracts: $(STAMP)
	$(VENV)/bin/lint-imports

pytest: $(STAMP)
	$(PY) -m pytest -q -n 3 --dist loadfile -m "not slow"

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) var
