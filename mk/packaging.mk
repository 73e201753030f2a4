# Packaging: images, kustomize install, OLM v1 bundle and file-based catalog.
# Included by the top-level Makefile; `make help` lists the targets.
#
# Images build with docker (DOCKER=docker, the default when it exists) or
# buildah (DOCKER=buildah); the Dockerfile's builder stage compiles the
# binaries, or BINARIES=prebuilt packages static binaries from dist/
# (`make dist` copies them there from the project's one release build,
# tests/lib/build.sh, without pulling a Rust image).

VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
CRD_VERSION ?= v1alpha1
IMAGE_REGISTRY ?= ghcr.io/flightdeck-dev
OPERATOR_IMG ?= $(IMAGE_REGISTRY)/flightdeck-operator:$(VERSION)
GATEWAY_IMG ?= $(IMAGE_REGISTRY)/flightdeck-gateway:$(VERSION)
READER_IMG ?= $(IMAGE_REGISTRY)/flightdeck-reader:$(VERSION)
BUNDLE_IMG ?= $(IMAGE_REGISTRY)/flightdeck-operator-bundle:v$(VERSION)
CATALOG_IMG ?= $(IMAGE_REGISTRY)/flightdeck-operator-catalog:v$(VERSION)
# The node images' registry (`make node-images`): local only, never pulled
# (config/manager's imagePullPolicy is IfNotPresent), so
# `make deploy IMAGE_REGISTRY=localhost/flightdeck` runs what was loaded.
NODE_IMAGE_REGISTRY ?= localhost/flightdeck
DOCKER ?= $(shell command -v docker >/dev/null 2>&1 && echo docker || echo buildah)
BINARIES ?= builder
# buildah without a container runtime: chroot isolation (and STORAGE_DRIVER=vfs
# in the environment where overlay is unavailable).
BUILD_FLAGS ?= $(if $(filter buildah,$(notdir $(DOCKER))),--isolation chroot,)
KUBECTL ?= kubectl
FLIGHTDECK ?= $(CARGO) run -q -p flightdeck-cli --
# config/manager names our images with the default registry and version;
# deploy pins them to IMAGE_REGISTRY and VERSION (as `flightdeck bundle` does).
PIN_IMAGES = sed -E 's@[^ "=]+/(flightdeck-(operator|gateway|reader)):[^ "]+@$(IMAGE_REGISTRY)/\1:$(VERSION)@g'

##@ Packaging

.PHONY: dist
dist: ## Static operator/gateway/reader binaries into dist/ (for BINARIES=prebuilt; tests/lib/build.sh builds them)
	bin=$$(tests/lib/build.sh) && mkdir -p dist && cp "$$bin"/flightdeck-{operator,gateway,reader} dist/

.PHONY: docker-build
docker-build: ## Build the operator, gateway and reader images (BINARIES=prebuilt uses dist/)
	$(DOCKER) build $(BUILD_FLAGS) --build-arg BINARIES=$(BINARIES) --target operator -t $(OPERATOR_IMG) .
	$(DOCKER) build $(BUILD_FLAGS) --build-arg BINARIES=$(BINARIES) --target gateway -t $(GATEWAY_IMG) .
	$(DOCKER) build $(BUILD_FLAGS) --build-arg BINARIES=$(BINARIES) --target reader -t $(READER_IMG) .

.PHONY: node-images
node-images: ## Build the node images (operator, gateway, reader, test engine, llama.cpp+SmolLM2; cached) and load them into the running node; prints the refs
	FLIGHTDECK_IMAGE_REGISTRY=$(NODE_IMAGE_REGISTRY) FLIGHTDECK_IMAGE_VERSION=$(VERSION) tests/images/load.sh

.PHONY: docker-push
docker-push: ## Push the operator, gateway and reader images
	$(DOCKER) push $(OPERATOR_IMG)
	$(DOCKER) push $(GATEWAY_IMG)
	$(DOCKER) push $(READER_IMG)

.PHONY: bundle
bundle: ## Generate bundle/ (CSV, annotations) and bundle.Dockerfile from config/ and VERSION
	$(FLIGHTDECK) bundle --version $(VERSION) --image-registry $(IMAGE_REGISTRY)

.PHONY: bundle-build
bundle-build: ## Build the OLM bundle image
	$(DOCKER) build $(BUILD_FLAGS) -f bundle.Dockerfile -t $(BUNDLE_IMG) .

.PHONY: bundle-push
bundle-push: ## Push the OLM bundle image
	$(DOCKER) push $(BUNDLE_IMG)

.PHONY: catalog
catalog: ## Render the file-based catalog from catalog/operator_catalog.yaml
	$(FLIGHTDECK) catalog --image-registry $(IMAGE_REGISTRY)

.PHONY: catalog-build
catalog-build: ## Build the file-based catalog image
	$(DOCKER) build $(BUILD_FLAGS) -f Dockerfile.catalog -t $(CATALOG_IMG) .

.PHONY: catalog-push
catalog-push: ## Push the file-based catalog image
	$(DOCKER) push $(CATALOG_IMG)

.PHONY: install
# Client-side apply without kubectl's schema check: servers older than the CEL
# rules in the CRD (x-kubernetes-validations, 1.25+) fail a server-side apply
# of it and kubectl's check against their OpenAPI, yet accept the CRD and drop
# the rules. What we ship is validated strictly by tests/packaging instead.
APPLY_FLAGS ?= --validate=false
install: ## Install the CRD into the cluster of the current kubeconfig
	$(KUBECTL) apply $(APPLY_FLAGS) -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRD (and with it every InferenceStack)
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: ## Install CRD, RBAC and operator without OLM (kustomize config/default, images of IMAGE_REGISTRY/VERSION)
	$(KUBECTL) kustomize config/default | $(PIN_IMAGES) | $(KUBECTL) apply $(APPLY_FLAGS) -f -

.PHONY: undeploy
undeploy: ## Remove everything `make deploy` installed
	$(KUBECTL) delete --ignore-not-found -k config/default
