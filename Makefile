# Everything a developer or CI runs. `make run` and `make test` work on a fresh Debian machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium
APT_PACKAGES := chromium fonts-dejavu-core fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji

.PHONY: install system-deps run test test-fast lint bench soak docs clean

install: $(STAMP) system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed: set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,pyppeteer]'
	touch $@

# Debian's Chromium and fonts (Latin, Cyrillic, CJK, colour emoji); never a downloaded browser.
system-deps:
	@if [ -x "$(CHROMIUM)" ] && fc-list 2>/dev/null | grep -qi 'Noto Color Emoji'; then exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	else echo "Chromium and fonts are missing: run 'sudo apt-get install -y $(APT_PACKAGES)' (or set CHROMIUM=/path/to/chromium) and try again." >&2; exit 1; fi

run: install
	$(BIN)/screenshot-service demo

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

# The fast tier for local work: everything but the fault, n8n, fuzz and bench tiers (marked `slow`).
test-fast: install
	$(BIN)/pytest -m 'not slow' $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/hadolint Containerfile

# The README's table of SCREENSHOT_* variables, regenerated from settings.py.
docs: $(STAMP)
	$(BIN)/python -m screenshot_service.dev.settings_docs --write README.md

# Service, floor, browserless and shot-scraper (installed into ~/.cache/screenshot-service once) in turns.
bench: install
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# Memory over time: RSS after 100, 1,000 and 5,000 renders with recycling on; writes bench-soak.json.
soak: install
	$(BIN)/python -m benchmarks --soak --engines playwright $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist src/*.egg-info
