# Two commands do everything:  `make course` runs the course, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch is pinned here because, on the course's build machines, this exact CPU wheel is on
# local disk; a looser requirement pulls a multi-GB CUDA build. Override for a GPU box:
#   make course TORCH_SPEC='torch>=2.4'
TORCH_SPEC ?= torch==2.13.0
# `make course NOTEBOOKS=notebooks/04_pretraining.ipynb` runs just one chapter.
NOTEBOOKS ?=

.PHONY: install course test unit notebooks lab bench report clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '$(TORCH_SPEC)'
	$(PY) -m pip install -q -e '.[dev,web]'
	$(PY) -m ipykernel install --user --name course --display-name "Python (course)" >/dev/null
	$(PY) -c "import matplotlib.pyplot"  # build the font cache once, not inside a notebook
	touch $(STAMP)

install: $(STAMP)

# Execute every notebook in order, headless, in the current profile (default: cpu).
# Executed copies and per-notebook wall times go to runs/<profile>/.
course: install
	$(PY) -m course_utils.runner $(NOTEBOOKS)

# Unit tests, then every notebook under nbval, all in the small `ci` profile.
test: install unit notebooks

unit: install
	COURSE_PROFILE=ci TQDM_DISABLE=1 $(PY) -m pytest tests -q -p no:cacheprovider

notebooks: install
	COURSE_PROFILE=ci TQDM_DISABLE=1 $(PY) -m pytest --nbval-lax --nbval-current-env -q -p no:cacheprovider \
		$(if $(NOTEBOOKS),$(NOTEBOOKS),notebooks)

lab: install
	$(VENV)/bin/jupyter lab notebooks

# Speed and quality figures, printed as JSON.
bench: install
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Chapter 12's report card: every stage on the same tasks (missing stages are built first),
# written to runs/<profile>/report_card.json and .md. Figures are cached beside each stage.
report: install
	$(PY) -m course_utils.report_card

clean:
	rm -rf runs checkpoints data/ci data/cpu data/gpu
