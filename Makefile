# The kit's commands. Each step is idempotent: a second run reuses what the first installed.
#   make lab    set up (.venv, pinned packages, kdlib editable, data) and start JupyterLab
#   make test   set up, then unit tests and nbval over solutions/ and notebooks/ in the ci profile
#   make run    set up, then execute every notebook in the default profile into build/ (+ HTML)
#   make gpu-check  every notebook in the gpu profile, 3 at a time, 600 s each: build/gpu_check/summary.md
#   make classroom  the nbgrader course made from solutions/, every assignment released: build/classroom
#   make test-browser  set up (with Chromium), then only the browser tests: JupyterLab in headless Chromium
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.kdlib-installed
DATA   := datasets/cache/.fetched

.PHONY: lab test run setup data notebooks benchmark report clean gpu-check classroom browser test-browser

setup: $(STAMP) $(DATA)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --upgrade --quiet "pip>=23.2"
	$(PY) -m pip install -e ".[lab,test,classroom]"
	touch $(STAMP)

$(DATA): $(STAMP) kdlib/data/mnist.py kdlib/data/fetch.py
	$(PY) datasets/fetch.py
	touch $(DATA)

data: $(DATA)

# JupyterLab refuses to start as root unless told; containers often run as root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) notebooks/

# The browser tests (tests/test_browser.py) need Chromium and its driver: Debian's packages, installed here when
# run as root; otherwise the command is printed (and the tests fail saying the same, unless KDLIB_BROWSER=skip).
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if [ "$$KDLIB_BROWSER" = skip ] || [ -n "$$KDLIB_CHROMIUM" ] \
	  || { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing $(BROWSER_PACKAGES) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; \
	else echo "The browser tests need Chromium and its driver: sudo apt-get install $(BROWSER_PACKAGES)" \
	  "(or name them with KDLIB_CHROMIUM and KDLIB_CHROMEDRIVER)"; fi

test: setup browser
	KDLIB_PROFILE=ci $(PY) -m pytest

test-browser: setup browser
	KDLIB_PROFILE=ci $(PY) -m pytest tests/test_browser.py

run: setup
	mkdir -p build
	for nb in solutions/*.ipynb; do \
	  $(VENV)/bin/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=3600 \
	    --output-dir build "$$nb" && \
	  $(VENV)/bin/jupyter nbconvert --to html --output-dir build "build/$$(basename $$nb)" || exit 1; \
	done

gpu-check: setup
	$(PY) -m kdlib.teaching.gpu_check --profile gpu

classroom: $(STAMP)
	$(PY) -m kdlib.teaching.classroom --release

notebooks: $(STAMP)
	$(PY) -m kdlib.teaching.exercises

benchmark: setup
	$(PY) benchmarks/kd_epoch_cost.py
	$(PY) benchmarks/lm_topk_cache.py

report: $(STAMP)
	$(PY) -m kdlib.teaching.report

clean:
	rm -rf build $(VENV)
