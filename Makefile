# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv when missing. torch is installed first, pinned to the CPU wheel
# this project's machines carry on disk (TORCH_SPEC); elsewhere set TORCH_SPEC to the
# build you want (e.g. TORCH_SPEC=torch), or install torch into .venv beforehand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
# tests/test_wheel.py installs the same torch into its fresh virtual environment
export TORCH_SPEC
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: setup demo test browser lint bench clean

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)" 2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/python -c "import torch" || (echo "torch could not be installed; set TORCH_SPEC" && exit 1)
	@$(PIP) install -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/python -c "import contraclust, lightning, kornia, sklearn" || (echo "installation failed" && exit 1)
	@touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/contraclust demo

# The report test renders report.html in headless Chromium.
browser:
	@bash scripts/ensure-chromium.sh

test: setup browser
	$(BIN)/ruff check contraclust tests benchmarks
	$(BIN)/ruff format --check contraclust tests benchmarks
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/quality.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
