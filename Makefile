# The two commands of the README:
#   make demo   build the bundled digits example for nano33 and run it on the QEMU twin
#   make test   run the whole test suite
# Both install what they need first (Debian packages, .venv, pinned Python packages)
# and skip every install step that is already done, so a second run is fast.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm cmake
# The venv is re-synced only when the pins or the package metadata change.
STAMP := $(VENV)/.tinyq-installed-$(shell cat requirements.lock requirements-nodeps.lock pyproject.toml | sha256sum | cut -c1-12)
EXAMPLE := examples/digits
BUILD := build/digits
PYTEST_ARGS ?=
# Test processes: one per core (pytest-xdist); a module with costly module fixtures stays on one worker.
JOBS ?= auto

export PLATFORMIO_SETTING_ENABLE_TELEMETRY := No
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup demo test test-fast apt venv clean

setup: apt venv

apt:
	@if ! command -v arm-none-eabi-gcc >/dev/null || ! command -v qemu-system-arm >/dev/null || ! command -v cmake >/dev/null \
	    || [ ! -e /usr/lib/arm-none-eabi/newlib/libc.a ]; then \
	  echo "installing Debian packages: $(APT_PACKAGES)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

venv: $(STAMP)

$(STAMP): requirements.lock requirements-nodeps.lock pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r requirements.lock
	$(VENV)/bin/python -m pip install -q --no-deps -r requirements-nodeps.lock
	$(VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.tinyq-installed-* && touch $@

demo: setup
	$(VENV)/bin/tinyq build $(EXAMPLE)/model.keras --board nano33 --calib $(EXAMPLE)/calib.npy \
	    --eval $(EXAMPLE)/test.npz -o $(BUILD)
	$(VENV)/bin/tinyq flash --build $(BUILD) --emulator qemu

test: setup
	$(VENV)/bin/python -m pytest -n $(JOBS) --dist loadgroup $(PYTEST_ARGS)

# Everything but the slow tests (large-model conversions, every zoo model in QEMU).
test-fast: setup
	$(VENV)/bin/python -m pytest -n $(JOBS) --dist loadgroup -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf build .cache .pytest_cache
