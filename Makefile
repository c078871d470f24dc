# wattpush: `make demo` runs the whole job natively, `make test` runs every test this machine can.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PACKAGES := base-monitoring-client/base_monitoring_client cpu-rapl-client/cpu_rapl_client \
	gpu-nvml-client/gpu_nvml_client docker-overhead-client/docker_overhead_client \
	ffmpeg-runner/ffmpeg_runner advisor/advisor
MYPYPATH := base-monitoring-client:cpu-rapl-client:gpu-nvml-client:docker-overhead-client:ffmpeg-runner:advisor
PYTEST_ARGS ?=

.PHONY: help setup system-deps venv lint deploy-check test unit bench demo e2e-docker e2e-multi-host wheels proto clean

help:
	@echo "make setup   install system packages (Debian/Ubuntu, as root) and the Python venv"
	@echo "make demo    local Prometheus + clients + a short scenario batch + advisor report"
	@echo "make test    lint, type checks and every test this machine can run"
	@echo "make bench   benchmarks (ratios against peers measured in the same run)"

setup: system-deps venv

system-deps:
	@bash e2e/install_system_deps.sh

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)
	$(PY) -m pip install --quiet -e '.[dev,gpu,docker,advisor,pyjoules,quality]'

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	MYPYPATH=$(MYPYPATH) $(VENV)/bin/mypy --strict $(PACKAGES)

deploy-check:
	shellcheck docker-compose_helper.sh prometheus/*.sh AppArmor/install.sh e2e/*.sh .ci/run
	promtool check rules prometheus/rules/*.yml
	promtool test rules prometheus/rules/tests/*_test.yml
	bats deploy-tests/

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

wheels: venv
	rm -rf build/wheels
	$(PY) -m pip wheel --quiet -w build/wheels '.[gpu,docker,advisor,pyjoules]'

proto:
	# Regenerates the checked-in gencode; grpcio-tools 1.81 matches protobuf >= 6.33.5.
	$(PY) -m pip install --quiet 'grpcio-tools==1.81.1'
	cd base-monitoring-client/base_monitoring_client && \
	  ../../$(PY) -m grpc_tools.protoc -Iproto --python_out=/tmp/wattpush-pb --pyi_out=/tmp/wattpush-pb \
	  proto/wattpush/remote_write.proto && \
	  cp /tmp/wattpush-pb/wattpush/remote_write_pb2.py /tmp/wattpush-pb/wattpush/remote_write_pb2.pyi .

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
