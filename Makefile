# wattpush: `make demo` runs the whole job natively, `make test` runs every test this machine can.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The components are listed once, in pyproject.toml ([tool.wattpush]); the system python3 (3.11+,
# tomllib) reads them, so this works before the venv exists. Expanded only where used.
WATTPUSH_TOML := import tomllib; w = tomllib.load(open("pyproject.toml", "rb"))["tool"]["wattpush"]
PACKAGES = $(shell python3 -c '$(WATTPUSH_TOML); print(*(c["dir"] + "/" + c["package"] for c in w["components"]))')
MYPYPATH = $(shell python3 -c '$(WATTPUSH_TOML); print(":".join(c["dir"] for c in w["components"]))')
TEST_SUPPORT = $(shell python3 -c '$(WATTPUSH_TOML); print(w["test-support"])')
PYTEST_ARGS ?=

.PHONY: help setup system-deps venv lint deploy-check k8s-env test unit bench demo e2e-docker e2e-multi-host wheels proto clean

help:
	@echo "make setup   install system packages (Debian/Ubuntu, as root) and the Python venv"
	@echo "make demo    local Prometheus + clients + a short scenario batch + advisor report"
	@echo "make test    lint, type checks and every test this machine can run"
	@echo "make bench   benchmarks (ratios against peers measured in the same run)"
	@echo "make k8s-env copy .env into deploy/kubernetes/base after you edit it"

setup: system-deps venv

system-deps:
	@bash e2e/install_system_deps.sh

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)
	$(PY) -m pip install --quiet -e '.[dev,gpu,docker,advisor,pyjoules,quality,carbon]'

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@packages='$(PACKAGES)' test_support='$(TEST_SUPPORT)'; [[ -n $$packages && -n $$test_support ]] || \
	  { echo "make: python3 (3.11+) could not read [tool.wattpush] in pyproject.toml" >&2; exit 1; }
	MYPYPATH=$(MYPYPATH) $(VENV)/bin/mypy --strict $(PACKAGES) $(TEST_SUPPORT)

deploy-check:
	shellcheck docker-compose_helper.sh prometheus/*.sh AppArmor/install.sh e2e/*.sh .ci/run
	promtool check rules prometheus/rules/*.yml
	promtool test rules prometheus/rules/tests/*_test.yml
	bats deploy-tests/

# kustomize reads no file above a kustomization's directory, so the ConfigMap's source is a copy
# of .env inside the base; deploy-tests/test_deploy_kubernetes.py fails while they differ.
K8S_ENV := deploy/kubernetes/base/wattpush.env
k8s-env:
	{ printf '# Generated from .env by `make k8s-env`: edit .env, then run it again.\n'; cat .env; } \
	  > $(K8S_ENV).tmp && mv $(K8S_ENV).tmp $(K8S_ENV)

test: setup lint deploy-check
	$(PY) -m pytest $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest -m "not integration and not slow and not docker" $(PYTEST_ARGS)

bench: setup
	$(PY) bench/remote_write_bench.py
	$(PY) bench/client_cpu_bench.py --repeats 2
	$(PY) bench/advisor_bench.py

demo: setup
	bash e2e/native_demo.sh

# The compose stack for real (a private dockerd when none is reachable); also a .ci/run stage.
e2e-docker: setup wheels
	bash e2e/docker_stack.sh

e2e-multi-host: setup
	bash e2e/multi_host.sh

# core: wattpush and what every image installs (the base image copies only these); extras:
# the rest of the extras' wheels, copied by the images that install them (advisor, pyJoules, NVML)
wheels: venv
	rm -rf build/wheels
	$(PY) -m pip wheel --quiet -w build/wheels/core .
	$(PY) -m pip wheel --quiet -w build/wheels/extras '.[gpu,docker,advisor,pyjoules]'
	cd build/wheels/core && rm -f -- $$(printf '../extras/%s ' *.whl)

proto:
	# Regenerates the checked-in gencode; grpcio-tools 1.81 matches protobuf >= 6.33.5.
	$(PY) -m pip install --quiet 'grpcio-tools==1.81.1'
	cd base-monitoring-client/base_monitoring_client && \
	  ../../$(PY) -m grpc_tools.protoc -Iproto --python_out=/tmp/wattpush-pb --pyi_out=/tmp/wattpush-pb \
	  proto/wattpush/remote_write.proto && \
	  cp /tmp/wattpush-pb/wattpush/remote_write_pb2.py /tmp/wattpush-pb/wattpush/remote_write_pb2.pyi .

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
