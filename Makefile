# The README's two commands.  Both install what is missing first (apt, pip) and are safe to
# run again.  Run as root.
PYTHON ?= python3
CONFIG ?= configs/default.yaml
PYTEST_ARGS ?=

.PHONY: run test lint fuzz setup setup-test build clean

run: setup
	$(PYTHON) -m dpdkswitch run $(CONFIG)

# Fuzzing time in all, split evenly over scripts/fuzz.sh's targets (the parser, the action executor).
FUZZ_SECONDS ?= 60

test: setup-test
	PYTHON=$(PYTHON) scripts/lint.sh
	meson test -C build --print-errorlogs
	scripts/fuzz.sh $(FUZZ_SECONDS)
	$(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; exit 1; fi; exit $$rc
	DPDKSWITCH_HUGEPAGES=off $(PYTHON) -m pytest -q -p no:cacheprovider -m "dpdk and not netns" $(PYTEST_ARGS); \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "no datapath tests collected for the --no-huge pass" >&2; exit 1; fi; exit $$rc

lint: setup-test
	PYTHON=$(PYTHON) scripts/lint.sh

fuzz: setup-test
	scripts/fuzz.sh $(FUZZ_SECONDS)

setup:
	scripts/setup.sh run

setup-test:
	scripts/setup.sh test

build:
	ninja -C build

clean:
	rm -rf build
