# The project's commands. `make demo` and `make test` work on a fresh machine: both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The torch build to install; 2.13.0 is the CPU wheel the project is developed and tested with.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup test demo bench conformance clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/lipsync backend=viseme input.image=astronaut input.audio=assets/speech.wav output.path=outputs/demo.mp4

bench: setup
	$(PY) tools/bench.py

conformance: setup
	$(PY) tools/conformance.py ../shared/conformance

clean:
	rm -rf $(VENV) build dist *.egg-info outputs multirun
