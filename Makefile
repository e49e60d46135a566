# The two commands of the README: `make demo` and `make test`. Both set up what they need
# on a fresh Debian 12 machine (run as root: apt packages and the Asterisk sandbox root).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Debian packages the demo and the tests use: the Asterisk root builder, the SIP caller
# and agent, prompt synthesis, audio I/O, and real FTP(S)/SFTP servers for the storage
# tests (started on loopback by the tests themselves; curl for the benchmark baseline);
# systemd for `systemd-analyze verify` of the unit we ship (no systemd needs to be running);
# chromium for the web console's browser tests (Playwright drives it; it never downloads one).
APT_PACKAGES := python3-venv mmdebstrap sip-tester espeak-ng sox libsndfile1 ca-certificates \
	vsftpd openssh-server curl systemd chromium

.PHONY: demo test lint typecheck unit e2e deps venv prompts clean bench

demo: deps venv
	$(BIN)/python -m pbx_bridge.sandbox.demo

# Parallel workers (pytest-xdist), each with its own Asterisk sandbox (tests/sandbox_names.py):
# most end-to-end time is real-time audio, so three workers fit on two cores.
TEST_WORKERS ?= 3

test: deps venv lint typecheck
	bash .ci/ensure-postgres
	$(BIN)/pytest -ra -n $(TEST_WORKERS) --dist loadfile

lint: venv
	$(BIN)/ruff check pbx_bridge storage migrations tests $(wildcard bench)

typecheck: venv
	$(BIN)/mypy pbx_bridge storage

unit: venv
	bash .ci/ensure-postgres
	$(BIN)/pytest -ra -m "not asterisk"

e2e: deps venv
	$(BIN)/pytest -ra -m asterisk

# Speed and memory against baselines in the same run (bench/README.md); a few minutes.
bench: deps venv
	bench/run

prompts: venv
	$(BIN)/pbx-bridge prompts build

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
