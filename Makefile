# Lariba Cloud developer commands. Needs only python3 (3.11+, with venv) and make:
# uv, the package manager, is installed into .tools/ on first use.

SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run install test browser lint format bench reliability clean

run: install ## Run Lariba Cloud on http://127.0.0.1:8000 (embedded PostgreSQL, no configuration)
	$(UV) run --frozen lariba serve

test: install browser ## Run the test suite
	$(UV) run --frozen pytest

browser: ## Debian's Chromium, driven by the console's browser tests (installed when missing)
	@if [ -z "$$LARIBA_TEST_CHROMIUM" ] && ! command -v chromium >/dev/null; then \
	    echo "Installing Debian's chromium for the console's browser tests"; \
	    $$([ "$$(id -u)" = 0 ] || echo sudo) sh -c 'apt-get update -qq && apt-get install -y -qq chromium'; \
	fi

lint: install ## ruff (lint + format check) and mypy
	$(UV) run --frozen ruff check src tests bench
	$(UV) run --frozen ruff format --check src tests bench
	$(UV) run --frozen mypy

format: install ## Apply ruff's formatting and safe fixes
	$(UV) run --frozen ruff format src tests bench
	$(UV) run --frozen ruff check --fix src tests bench

bench: install ## Benchmarks (see docs/benchmarks.md); BENCH_ARGS=--short for a quick run
	$(UV) run --frozen python -m bench.projects_list $(BENCH_ARGS)
	$(UV) run --frozen python -m bench.instances_create $(BENCH_ARGS)
	$(UV) run --frozen python -m bench.storage $(BENCH_ARGS)
	$(UV) run --frozen python -m bench.usage_report $(BENCH_ARGS)

reliability: install ## The whole reliability suite (docs/reliability.md): tests/reliability in full mode, then the 200-user load test
	LARIBA_RELIABILITY=full $(UV) run --frozen pytest tests/reliability tests/cloud/test_provider_faults.py
	$(UV) run --frozen python -m bench.load_mix

install: $(UV)
	$(UV) sync --frozen

$(CURDIR)/.tools/bin/uv:
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv==$(UV_VERSION)

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache
