# The project's commands. `make demo` and `make test` work on a fresh machine: both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The torch build to install; 2.13.0 is the CPU wheel the project is developed and tested with.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup browser test demo ui bench conformance clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

# The web app's browser tests drive Debian's chromium and chromedriver: installed when missing.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			echo "installing chromium and chromium-driver (browser tests)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
		else \
			echo "note: install Debian's chromium and chromium-driver to run the browser tests"; \
		fi; \
	fi

test: setup browser
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/lipsync backend=viseme input.image=astronaut input.audio=assets/speech.wav output.path=outputs/demo.mp4

# The web app on http://127.0.0.1:7860 (options: `.venv/bin/lipsync-ui --help`).
ui: setup
	$(VENV)/bin/lipsync-ui

# CPU benchmarks with targets: CLI answers (< 2 s), viseme end to end (>= 10x real time from a
# still, >= 3x from a video), SyncTalk2D generation (>= 10x the upstream loop).
# tools/bench_sonic.py and tools/bench_latentsync.py measure memory and step costs of the diffusion
# backends, tools/bench_memory.py every backend's peak memory against clip length (slow on a CPU;
# run them by hand).
bench: setup
	@echo "[1/3] command-line answers (tools/bench_cli.py, under a minute)"
	$(PY) -u tools/bench_cli.py
	@echo "[2/3] viseme end to end (tools/bench.py, about a minute; figures print as each case ends)"
	$(PY) -u tools/bench.py
	@echo "[3/3] SyncTalk2D generation (tools/bench_synctalk2d.py; a first run trains and quantises its reference U-Net, about 10 minutes at load 3-5, later runs reuse it; figures print as each path ends)"
	$(PY) -u tools/bench_synctalk2d.py

conformance: setup
	$(PY) tools/conformance.py ../shared/conformance

clean:
	rm -rf $(VENV) build dist *.egg-info outputs multirun
