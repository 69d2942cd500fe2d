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

# CPU benchmarks with targets: viseme end to end (>= 4x real time), SyncTalk2D generation (>= 10x
# the upstream loop). tools/bench_sonic.py and tools/bench_latentsync.py measure memory and step
# costs of the diffusion backends, tools/bench_memory.py every backend's peak memory against clip
# length (slow on a CPU; run them by hand).
bench: setup
	$(PY) tools/bench.py
	$(PY) tools/bench_synctalk2d.py

conformance: setup
	$(PY) tools/conformance.py ../shared/conformance

clean:
	rm -rf $(VENV) build dist *.egg-info outputs multirun
