# sleepkit: `make table1` runs Table 1 on this machine's GPU, `make test` runs the tests.
# RUNTIME=docker (default: one fresh GPU container per arm) or RUNTIME=local (workload on this host).
# ARGS="..." passes more options to `kit run` (e.g. ARGS="--repeat 3 --model-a /models/a").
# RESULTS=DIR keeps the runs somewhere else than results/.

PYTHON  ?= python3
RUNTIME ?= docker
RESULTS ?= results
ARGS    ?=
MODELS  ?= Qwen/Qwen3-0.6B,Qwen/Qwen3-1.7B,Qwen/Qwen3-4B,Qwen/Qwen3-8B,Qwen/Qwen3-14B,Qwen/Qwen3-32B
LEVELS  ?= 1,2
VENV    := .venv
# KIT_VIA_MAKE=1: the kit prints its hints as make commands (`make resume RUN=ID`), which run as printed.
KIT     := KIT_VIA_MAKE=1 $(VENV)/bin/kit
DEMO    := build/demo

.PHONY: help table1 table2 table3 table4 table5 all guide resume demo image doctor clean bench test test-fast site reference-figures docs

help:            ## this list
	@grep -E '^[a-z0-9 -]+:.*## ' $(MAKEFILE_LIST) | sed -e 's/:.*## /\t/' -e 's/^table1 table2 table3 table4 table5/table1..5/' | expand -t 12

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e .
	touch $@

# torch is pinned for the tests only: the twins' tiny models run on the CPU build.
$(VENV)/.test-installed: $(VENV)/.installed
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[test,twins]'
	touch $@

table1 table2 table3 table4 table5: $(VENV)/.installed  ## run one table (RUNTIME=docker|local)
	$(KIT) run $(@:table%=%) --runtime $(RUNTIME) --results-dir $(RESULTS) $(ARGS)

all: $(VENV)/.installed  ## every arm once, all five tables, figures, then a verified bundle
	$(KIT) run --all --runtime $(RUNTIME) --results-dir $(RESULTS) $(ARGS)
	$(KIT) plot --results-dir $(RESULTS)
	$(KIT) bundle verify "$$($(KIT) bundle --results-dir $(RESULTS))"

guide: $(VENV)/.installed  ## which sleep level for which model size (MODELS=a,b LEVELS=1,2), figure, verified bundle
	$(KIT) sweep --models $(MODELS) --levels $(LEVELS) --runtime $(RUNTIME) --results-dir $(RESULTS) $(ARGS)
	$(KIT) plot --results-dir $(RESULTS)
	$(KIT) bundle verify "$$($(KIT) bundle --results-dir $(RESULTS))"

resume: $(VENV)/.installed  ## finish an interrupted run: make resume RUN=ID (its own options; RESULTS=DIR if not results)
	@test -n "$(RUN)" || { echo "make resume: give the run, e.g. make resume RUN=20261128-031024-t1 (see kit ls)" >&2; exit 2; }
	$(KIT) run --resume $(RUN) --results-dir $(RESULTS)

# The double lives in tests/; the run is marked "test double (no GPU, no vLLM)" in everything it writes.
demo: $(VENV)/.installed  ## Table 1 against the vLLM test double (no GPU, no vLLM needed), in build/demo/: under a minute
	$(KIT) run 1 --runtime local --results-dir $(DEMO) --model-a demo-model-a --model-b demo-model-b \
	    --server-cmd "$(CURDIR)/$(VENV)/bin/python $(CURDIR)/tests/vllm_double.py"

image: $(VENV)/.installed  ## build the pinned vLLM image with the kit inside
	$(KIT) build $(ARGS)

doctor: $(VENV)/.installed  ## can a run start here?
	$(KIT) doctor --runtime $(RUNTIME) --results-dir $(RESULTS)

clean: $(VENV)/.installed  ## remove leftover containers of earlier runs
	$(KIT) clean

site: $(VENV)/.installed  ## the committed reference runs as a static website in build/site
	$(KIT) site --results-dir results/reference --out build/site

# The site copies a run's figures when figures/index.json says they show what it would draw; test_site checks
# that the committed ones are current.
reference-figures: $(VENV)/.installed  ## redraw the committed reference runs' figures (then commit their SVGs and index.json)
	for run in results/reference/*/manifest.json; do $(KIT) plot "$${run%/manifest.json}" >/dev/null || exit; done

docs: $(VENV)/.installed  ## docs/cli.md, the command reference, from every command's --help
	$(VENV)/bin/python scripts/cli_reference.py

bench: $(VENV)/.test-installed  ## the kit's timing error, and arms on 1 vs 2 GPU lanes, against the vLLM test double
	$(VENV)/bin/python tests/bench_timing.py
	$(VENV)/bin/python tests/bench_parallel.py

# The unit tier runs on every core (pytest-xdist, a file per worker) with its temporary files in RAM where /dev/shm
# has room (TEST_TMP=DIR puts them elsewhere): the kit fsyncs what it writes, and on a busy disk that waiting took
# more of the tier's time than the tests did. PYTHONDONTWRITEBYTECODE is cleared for it: with it set, every worker
# and every `python -m kit` the tests start compiled the kit and re-rewrote the tests' asserts from source, each time
# (the .pyc files land in the __pycache__ folders git ignores).
UNIT     := not e2e and not render and not docker and not slurm and not twins and not browser
TEST_TMP ?= $(shell df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 && $$4 > 1048576 {print "/dev/shm"}')

test-fast: $(VENV)/.test-installed  ## the unit tier only (in-process, no engine, no Slurm): seconds
	tmp=$$(mktemp -d "$(or $(TEST_TMP),$(TMPDIR),/tmp)/sleepkit-tests.XXXXXX") || exit 1; \
	    TMPDIR=$$tmp PYTHONDONTWRITEBYTECODE= $(VENV)/bin/python -m pytest -q -n auto --dist loadfile --basetemp=$$tmp/pytest -m "$(UNIT)" $(PYTEST_ARGS); \
	    status=$$?; rm -rf "$$tmp"; exit $$status

test: $(VENV)/.test-installed  ## all tests; starts a Docker engine and a one-node Slurm for the integration tests
	bash .ci/docker-up.sh
	status=0; bash .ci/slurm-up.sh && bash .ci/browser-up.sh && $(VENV)/bin/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	    bash .ci/slurm-down.sh; bash .ci/docker-down.sh; exit $$status
