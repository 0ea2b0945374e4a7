# Quorum — the commands a newcomer and CI rely on (see README "Commands").
# Heavy artifacts (uv's package cache, built Kubernetes binaries) live under ~/.cache, outside the checkout,
# so a second `make setup` is fast.

SHELL := /bin/bash
PYTHON_VERSION ?= 3.11
export UV_CACHE_DIR ?= $(HOME)/.cache/uv
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.cache/quorum/uv/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
QUORUM := $(VENV)/bin/quorum
GO := $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)

.PHONY: setup python-env k8s loadgen test test-unit demo lint fmt crds cluster-up cluster-down bench clean image

setup: python-env k8s loadgen ## install everything: Python env (uv, locked), the local Kubernetes binaries, the bench load generator

python-env: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock scripts/bootstrap-uv.sh
	@bash scripts/bootstrap-uv.sh
	$(UV) sync --frozen --all-extras --python $(PYTHON_VERSION)  # every image's dependencies, torch included (tests)
	$(QUORUM) embedder export  # the ONNX embedder, once, from the packaged weights (cached)
	@touch $@

loadgen: .cache/bin/loadgen ## the router benchmark's backend and load generator (Go, standard library only)

.cache/bin/loadgen: bench/loadgen/main.go bench/loadgen/go.mod
	@mkdir -p .cache/bin
	cd bench/loadgen && $(GO) build -o ../../.cache/bin/loadgen .

k8s: python-env ## build (once, cached in ~/.cache/quorum/k8s) the control-plane binaries
	$(PY) -m e2e.build

test: setup ## the whole suite: unit, real control plane, real local model server
	$(PY) -m pytest

test-unit: python-env ## the fast part of the suite (no control plane, no model server)
	$(PY) -m pytest -m "not cluster and not model"

demo: python-env ## a real local SynthesisJob with the packaged tiny model, written under out/
	$(QUORUM) synth run examples/local/synthesisjob.yaml --local --out out/demo

lint: python-env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(QUORUM) crds check

fmt: python-env
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

crds: python-env ## regenerate crds/ (and the CRD chart) from the pydantic models
	$(QUORUM) crds generate

image: python-env ## build the operator and worker/router images with podman from images/Dockerfile (root; apt-get install podman debootstrap runc)
	bash images/build.sh

cluster-up: setup ## start etcd + kube-apiserver + controller-manager + scheduler + kwok on loopback
	$(PY) -m e2e.cluster up

cluster-down: python-env ## stop it and remove .cache/cluster
	$(PY) -m e2e.cluster down

bench: python-env k8s
	$(PY) bench/synth_throughput.py
	$(PY) bench/router_overhead.py
	$(PY) bench/dedup.py
	$(PY) bench/embedding.py
	$(PY) bench/operator_scale.py

clean: ## stops a `make cluster-up` plane before deleting its state under .cache
	@if [ -x $(PY) ]; then $(PY) -m e2e.cluster down; fi
	rm -rf $(VENV) out .cache .pytest_cache .ruff_cache
