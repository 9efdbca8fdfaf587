# The two commands: `make demo` and `make test`. Both create or update .venv first. `make replicate`: the toy
# replication the README publishes (3 seeds; make demo runs its seed 0).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU torch wheel lies in /opt/wheels on the kit's build machines; elsewhere pip uses PyPI.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
STAMP := $(VENV)/.installed

.PHONY: venv demo replicate test rehearse test-build test-slow test-browser test-multiprocess test-football browser football lab bench gpu-check-prepare clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "lmm_r1 needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(FIND_LINKS) -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: venv
	$(VENV)/bin/lmm-r1 run --profile demo
	@echo; cat results/demo/replication.md  # seed 0 of the toy replication (notebook 04)

replicate: venv
	$(VENV)/bin/lmm-r1 run --profile tiny
	@echo; cat results/tiny/replication.md  # the toy replication table (notebook 04), seeds 0-2

test: venv
	$(PY) -m pytest

# The paper profile rehearsed on CPU (lmm_r1/rehearsal.py): every cell of notebooks 01-04 with the paper's
# parameter files, stages and launch path (two processes), offline, against stand-ins (~5-10 min on 2 cores; CI).
rehearse: venv
	$(VENV)/bin/lmm-r1 run --profile paper --rehearse

# The builder on this machine: the default tiny model built from scratch (minutes; its phases printed as they go)
# and held to the designed properties with the margins of the card's build matrix, as the shipped copy is in
# `make test`. CI runs it after `make test`.
test-build: venv
	$(PY) -m pytest --fresh-tiny-model -s tests/test_warmstart.py -k default_model

test-slow: venv browser
	$(PY) -m pytest -m "slow or browser or multiprocess"

# Training in processes of its own: two torchrun ranks (gloo) killed, resumed, chained; an accelerate launch;
# side-by-side runs (~3-4 min on 2 cores; CI runs it).
test-multiprocess: venv
	$(PY) -m pytest -m multiprocess

# The JupyterLab browser test: Debian's Chromium (apt) driven by Playwright (PyPI); never a downloaded browser build.
browser: venv
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium)
	$(PY) -m pip install -q $(FIND_LINKS) -e '.[test,browser]'

test-browser: browser
	$(PY) -m pytest -m browser

# gfootball 2.10.2 for Football-Online (lmm_r1/football.py): a native build against Debian's SDL2/Boost packages,
# ~15 min on 2 cores. Its build script imports psutil, so no build isolation; CMake must find this venv's Python
# (pyenv shims off PATH) and Boost's python3XX. Measured on Debian 12 / Python 3.11 (shared/reviews/gfootball.md).
FOOTBALL_APT := cmake build-essential libgl1-mesa-dev libegl-dev libsdl2-dev libsdl2-image-dev libsdl2-ttf-dev \
  libsdl2-gfx-dev libboost-thread-dev libboost-system-dev libboost-filesystem-dev libboost-python-dev
football: venv
	@dpkg -s $(FOOTBALL_APT) >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(FOOTBALL_APT))
	$(PY) -m pip install -q $(FIND_LINKS) wheel psutil==7.2.2 six==1.17.0
	PATH="$(CURDIR)/$(VENV)/bin:$$(dirname $$(readlink -f $(PY))):/usr/bin:/bin" \
	  $(PY) -m pip install -q $(FIND_LINKS) --no-build-isolation -e '.[test,football]'

# The Football-Online tests that need the engine (skipped where gfootball is absent).
test-football: football
	$(PY) -m pytest tests/test_football.py

# JupyterLab with the kit's kernel, rooted at the repository: open notebooks/ to run, results/<profile>/ to read.
lab: venv
	$(VENV)/bin/jupyter lab --notebook-dir=. $(LAB_ARGS)

bench: venv
	$(PY) benchmarks/bench_rewards.py
	$(PY) benchmarks/bench_grpo_step.py
	$(PY) benchmarks/bench_generation.py

clean:
	rm -rf $(VENV) results/tiny

# What scripts/gpu_check.sh carries to a lent GPU machine (its image has torch/transformers/accelerate, not these):
# pure-Python wheels for its Python 3.12, DeepSpeed as a pure wheel (ops JIT), and the warm-started tiny model.
gpu-check-prepare: venv
	mkdir -p .whl results/gpu_check
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
	  trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 peft==0.21.2 math-verify==0.9.0 \
	  latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2 hjson xxhash
	DS_BUILD_OPS=0 $(PY) -m pip wheel -q --no-deps -w .whl deepspeed==0.19.8
	LMM_R1_CACHE=$(CURDIR)/results/gpu_check/cache $(VENV)/bin/lmm-r1 tiny-model
