# Two commands: `make bench` (set up, run the quick profile, print the stability table) and
# `make test` (set up, run the tests). Needs only python3 (3.11+), git and make.

PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
ASV      := $(VENV)/bin/asv
PROFILE  ?= quick
STUDY_PROFILE ?= study
MACHINE  ?= $(shell hostname)
PYTEST_ARGS ?=

export HARNESS_PROFILE := $(PROFILE)
export HARNESS_MACHINE := $(MACHINE)
# asv passes no ASV_* variables to an `existing` interpreter: tell the harness where it writes.
export HARNESS_RESULTS := $(CURDIR)/results

# The default matrix's versions (asv.conf.json) also pin the quick profile's .venv.
# (asv.conf.json allows // comment lines, which json does not.)
PINS = $(shell $(PYTHON) -c 'import json; t = "".join(l for l in open("asv.conf.json") if not l.lstrip().startswith("//")); m = json.loads(t)["matrix"]["req"]; print(" ".join(f"{k}=={v[0]}" for k, v in m.items() if v and v[0]))')

.PHONY: bench test test-slow lint clean venv study writeup browser

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml asv.conf.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' $(PINS)
	touch $@

# Quick profile in the project's own .venv (asv's `existing` environment): no second install,
# and the fingerprint records exactly what that environment runs.
bench: venv
	$(ASV) machine --yes --machine $(MACHINE) >/dev/null
	@# asv rewrites results/benchmarks.json with this profile's benchmarks only: keep the others'.
	$(PY) -m harness.results.keep_benchmarks save results .asv/benchmarks.before.json
	HARNESS_COMMIT=$$(git rev-parse HEAD) $(ASV) run -E existing:$(CURDIR)/$(PY) \
		--set-commit-hash $$(git rev-parse HEAD) --machine $(MACHINE) --launch-method forkserver $(ASV_ARGS); \
		rc=$$?; $(PY) -m harness.results.keep_benchmarks restore results .asv/benchmarks.before.json; exit $$rc
	$(PY) -m harness table results --machine $(MACHINE) --commit $$(git rev-parse HEAD)

# The published study: every environment of asv.conf.json's matrix (releases, kernel families,
# thread counts, BLAS implementations). Resumable: environments with results are skipped.
study: export HARNESS_PROFILE = $(STUDY_PROFILE)
study: venv
	$(PY) -m harness.study.setup_backends --python $(CURDIR)/$(PY)
	$(PY) -m harness.study --machine $(MACHINE)
	$(PY) -m harness table results --machine $(MACHINE) --out .asv/study-table.md
	$(MAKE) writeup WRITEUP_ARGS="--machine $(MACHINE)"

# results/README.md, regenerated from the committed study results (nothing is re-run).
writeup: venv
	$(PY) -m harness writeup results --out results/README.md $(WRITEUP_ARGS)

# The report's browser test (tests/test_report_browser.py) drives headless Chromium: installed
# once with apt-get where it is missing and this runs as root; otherwise the test skips, saying so.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver >/dev/null; } || \
	echo "make: headless Chromium not installed (needs root and apt-get): the browser test skips"

test: venv browser
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: venv
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf .asv .cache

# scanpy's own commits (issue #12), with asv.scanpy.conf.json: SCANPY_REPO is a git clone of
# scanpy. `make gate BASE=main HEAD=my-branch` exits 1 when HEAD changes PCA's bits or slows it
# down (GATE_ARGS: e.g. --datasets pbmc68k_reduced,10x_10k --factor 1.3); `make history` runs
# (and resumes) the published history and regenerates results/history/README.md.
SCANPY_REPO ?= ../scanpy
BASE ?= main
HEAD ?= HEAD
GATE_ARGS ?=
HISTORY_DATASETS ?= pbmc68k_reduced,10x_10k
HISTORY_ARGS ?=

.PHONY: gate history history-writeup

gate: venv
	$(PY) -m harness gate $(BASE) $(HEAD) --repo $(SCANPY_REPO) $(GATE_ARGS)

history: venv
	nice -n 10 $(PY) -m harness history $(SCANPY_REPO) \
		$$(git -C $(SCANPY_REPO) merge-base 1.10.4 1.11.0)..1.11.0 --datasets $(HISTORY_DATASETS) $(HISTORY_ARGS)
	nice -n 10 $(PY) -m harness history $(SCANPY_REPO) 1.11.0..1.12.3 --python 3.12 \
		--datasets $(HISTORY_DATASETS) $(HISTORY_ARGS)
	$(MAKE) history-writeup

history-writeup: venv
	$(PY) -m harness history-writeup results/history --out results/history/README.md
