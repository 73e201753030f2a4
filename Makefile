# Flightdeck — run `make help` for the targets.
#
# `make test` is what CI runs (.ci/run). Every step installs what it needs
# (apt, PyPI) and caches slow builds under ~/.cache/flightdeck, so it works on
# a fresh machine; the first run takes longer (Kubernetes and llama.cpp builds).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo

.DEFAULT_GOAL := help

##@ Main

.PHONY: up
up: ## Run the quickstart stack locally (llama.cpp + SmolLM2 on CPU, no Kubernetes)
	bin=$$(tests/lib/build.sh) && llama=$$(tests/lib/llama.sh server-path) && model=$$(tests/lib/llama.sh model-path) \
	  && exec "$$bin/flightdeck" up -f examples/quickstart.yaml --llama-server "$$llama" --model-file "$$model"

.PHONY: demo
demo: ## Operator path end to end on a local control plane, then `flightdeck up` + one chat completion
	tests/demo/run.sh

.PHONY: test
test: lint test-unit test-control-plane test-crd test-operator test-dataplane test-node test-packaging test-readme ## Everything CI runs

##@ Test steps

.PHONY: lint
lint: ## cargo fmt --check and clippy -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: test-unit
test-unit: ## Unit, handler and generated-artefact drift tests (no cluster)
	$(CARGO) test --workspace

.PHONY: test-control-plane
test-control-plane: ## Self-test of the local kube-apiserver + etcd harness
	tests/control-plane/smoke.sh

.PHONY: test-crd
test-crd: ## The generated CRD and every rendered example against a real API server
	tests/crd/run.sh

.PHONY: test-operator
test-operator: ## Operator scenarios against a real API server
	tests/operator/run.sh

.PHONY: test-dataplane
test-dataplane: ## Gateway + reader + engines as real processes, official openai client
	tests/dataplane/run.sh

.PHONY: test-node
test-node: ## Stacks on a real one-node Kubernetes (kubelet + containerd): pods that serve, rolls under load
	tests/node/run.sh

.PHONY: test-packaging
test-packaging: ## Charts, kustomize, OLM bundle/catalog, images
	tests/packaging/run.sh

.PHONY: test-readme
test-readme: ## Every command in the README is run
	tests/readme/run.sh

##@ Generated artefacts

.PHONY: generate
generate: ## Regenerate the CRD, bundle, catalog and the README's API reference
	$(CARGO) run -q -p flightdeck-cli -- crd --write
	$(CARGO) run -q -p flightdeck-cli -- reference --write
	$(MAKE) -s bundle catalog

##@ Benchmarks

.PHONY: bench
bench: bench-dataplane bench-operator bench-node ## All benchmarks (figures printed)

.PHONY: bench-dataplane
bench-dataplane: ## Gateway+reader vs direct vs nginx; pull vs round-robin with a slow reader
	tests/bench/dataplane.sh

.PHONY: bench-node
bench-node: ## On the node: apply -> first answer -> Ready, and rollouts under load (figures printed)
	tests/node/run.sh -k 'first_answer or rolls or force_deleted or longer_than'

.PHONY: bench-operator
bench-operator: ## Apply 100 and 500 stacks to a real API server, print latency/RSS/idle writes
	tests/operator/bench.sh

-include mk/packaging.mk

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)
