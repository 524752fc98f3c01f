# octopods-operator: kubebuilder-style targets.
# A recipe's pipeline fails when any command in it fails (kustomize | chartgen).
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec
VERSION ?= 0.1.0
IMG ?= ghcr.io/octopods/octopods-operator:$(VERSION)
CONTAINER_TOOL ?= docker

LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
KUSTOMIZE_VERSION ?= v5.8.2
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
KUBECTL ?= kubectl

.PHONY: all
all: build

##@ Start here
# make run-local   the whole system on this machine, no cluster needed
# make test        every test, envtest included; installs what it needs

.PHONY: help
help: ## Show this help (start with run-local, then test).
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } /^# make / { printf "  %s\n", substr($$0, 3) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs, RBAC and webhook manifests from markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	go run ./hack/policygen config/rbac/published_keys_policy.yaml

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet (the e2e suite included).
	go vet -tags e2e ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run

.PHONY: verify
verify: manifests generate fmt chart build-installer ## Fail when generated files (CRDs, RBAC, deepcopy, the chart, dist/install.yaml) or formatting are stale.
	@if [ -n "$$(git status --porcelain)" ]; then \
		echo "generated files are stale (or the tree has uncommitted changes); run 'make manifests generate fmt' and commit:"; \
		git status --porcelain; \
		git --no-pager diff --stat; \
		exit 1; \
	fi

.PHONY: envtest-assets
envtest-assets: ## Provide kube-apiserver and etcd for envtest (downloads, or builds from Go modules).
	@hack/envtest-assets.sh >/dev/null

.PHONY: test
test: manifests generate fmt vet ## Run every test: unit, fuzz seeds and envtest suites.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go test -race ./... -v -coverprofile cover.out -timeout 30m

.PHONY: test-e2e
test-e2e: manifests generate kustomize ## End-to-end suite: the real binaries on a local control plane, the whole user journey.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" KUSTOMIZE=$(KUSTOMIZE) go test -tags e2e ./test/e2e -v -count=1 -timeout 20m

.PHONY: fuzz
fuzz: ## Fuzz the key parser and the proxy's header handling, FUZZTIME each (default 30s).
	go test ./internal/apikey -run '^$$' -fuzz FuzzValidate -fuzztime $${FUZZTIME:-30s}
	go test ./internal/authproxy -run '^$$' -fuzz FuzzAuthorize -fuzztime $${FUZZTIME:-30s}

.PHONY: bench
bench: ## Benchmarks: key format, authorize at 10/10k/100k keys, and the load comparison with a bare reverse proxy.
	go test ./internal/... -run '^$$' -bench . -benchmem
	go run ./hack/loadbench

.PHONY: bench-grpc
bench-grpc: ## gRPC ext_authz Check beside HTTP forward-auth: checks/s, p50/p99 and server CPU per check at 10 and 100k keys.
	go run ./hack/grpcbench

.PHONY: bench-cache
bench-cache: ## The manager's Secret cache with 30 padded hand-made key-type Secrets, with and without its transform.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go run ./hack/cachebench

.PHONY: bench-cache-size
bench-cache-size: ## Live heap of one cached Workspace, WorkspaceAPIKey and key Secret in the manager: decoded, trimmed and interned, packed.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go run ./hack/cachesize

.PHONY: bench-restart
bench-restart: ## KeyDigestSlices against the design before them (built from git), over WORKSPACES (default 100000) workspaces with issued keys: the manager's restart (settle time, peak RSS, live heap, writes), the proxy's first sync, propagation (takes minutes).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go run ./hack/restartbench -workspaces $(or $(WORKSPACES),100000)

.PHONY: bench-sync
bench-sync: ## The auth proxy's first sync over KEYS (default 100000) keys in KeyDigestSlices, beside the proxy before pipelined lists (built from git): ready time, LIST requests, peak RSS.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go run ./hack/syncbench -keys $${KEYS:-100000}

.PHONY: bench-slice-write
bench-slice-write: ## What one key change costs in a KeyDigestSlice of 50 to 1000 keys: the update's answer and its delivery to a watch, against 100 keys in the same run (KeysPerSlice is chosen from it).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go run ./hack/slicewritebench

.PHONY: bench-gateway
bench-gateway: ## The auth-proxy binary behind nginx auth_request (against nginx's own map of the same keys) and as a reverse proxy (against a bare httputil.ReverseProxy): req/s and CPU µs per request, interleaved rounds; needs nginx and wrk.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go run ./hack/gatewaybench -keys $${KEYS:-10000}

.PHONY: bench-scale
bench-scale: ## The scale goals (issues 14 and 26: slices at 10k and WORKSPACES, default 100000) on a local control plane, then one table in docs/benchmarks.md (takes about 45 minutes; needs nginx and wrk).
	hack/bench-scale.sh

.PHONY: bench-rss
bench-rss: ## Resident memory of the auth-proxy binary with 100k published keys (WorkspaceAPIKeys), at rest and under traffic, with the Deployment's GOMEMLIMIT (takes minutes).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go run ./hack/rssbench -keys $${KEYS:-100000} -env GOMEMLIMIT=48MiB

##@ Build

.PHONY: build
build: manifests generate fmt vet binaries ## Generate, check, then build the manager, auth-proxy, opk-verify and kubectl-octopods binaries into bin/.

.PHONY: plugin-release
plugin-release: ## kubectl-octopods for linux/darwin (amd64, arm64) and windows/amd64 as tar.gz with sha256sums.txt and the filled krew manifest in dist/plugin (VERSION=v0.1.0).
	go run ./hack/pluginrelease -version "$(VERSION)"

.PHONY: binaries
binaries: ## Build the binaries into bin/ only (generated files are committed and checked by make verify).
	go build -o bin/manager ./cmd/manager
	go build -o bin/auth-proxy ./cmd/auth-proxy
	go build -o bin/opk-verify ./cmd/opk-verify
	go build -o bin/kubectl-octopods ./cmd/kubectl-octopods
	install -m 0755 hack/kubectl_complete-octopods bin/kubectl_complete-octopods

# Out of cluster there is no webhook certificate unless you pass
# --webhook-cert-dir; set ENABLE_WEBHOOKS=true to serve them.
ENABLE_WEBHOOKS ?= false

# RUN_LOCAL_FLAGS passes flags to run-local, e.g. --proxy-address=127.0.0.1:18080
# when 8080 is taken (go run ./hack/runlocal -h lists them).
RUN_LOCAL_FLAGS ?=

.PHONY: run-local
run-local: binaries ## Run everything locally with no cluster: control plane, manager with webhooks, auth proxy on 127.0.0.1:8080, echo upstream.
	@go build -o bin/runlocal ./hack/runlocal
	@# The built binary, not `go run`, and no shell (runlocal finds the
	@# control plane itself): a Ctrl-C ends it with exit status 0, and make
	@# prints no "Interrupt" line.
	@bin/runlocal $(RUN_LOCAL_FLAGS)

.PHONY: run
run: manifests generate fmt vet ## Run the manager against the cluster in ~/.kube/config.
	ENABLE_WEBHOOKS=$(ENABLE_WEBHOOKS) go run ./cmd/manager --metrics-bind-address=:18080 --metrics-secure=false --health-probe-bind-address=:18081

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) --build-arg REVISION=$$(git rev-parse HEAD) -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the container image.
	$(CONTAINER_TOOL) push $(IMG)

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install the CRDs into the cluster in ~/.kube/config.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Delete the CRDs, and with them EVERY Workspace, key and key Secret in the cluster (asks for DELETE_ALL_KEYS=yes).
	@n=$$($(KUBECTL) get workspaceapikeys -A --no-headers 2>/dev/null | wc -l); \
	if [ "$$n" -gt 0 ] && [ "$(DELETE_ALL_KEYS)" != "yes" ]; then \
	  echo "make uninstall deletes the CRDs, and with them all $$n WorkspaceAPIKeys, their Workspaces and every key Secret, in every namespace:"; \
	  echo "every integration loses its key. Run 'make uninstall DELETE_ALL_KEYS=yes' if that is what you want."; \
	  exit 1; \
	fi
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

# kustomize-image builds $(1) with the image IMG, through a throwaway overlay
# in bin/, so no tracked file is edited.
define kustomize-image
	@rm -rf $(LOCALBIN)/overlay && mkdir -p $(LOCALBIN)/overlay && \
	printf 'resources:\n- ../../$(1)\n' > $(LOCALBIN)/overlay/kustomization.yaml && \
	cd $(LOCALBIN)/overlay && $(KUSTOMIZE) edit set image ghcr.io/octopods/octopods-operator=$(IMG)
	@$(KUSTOMIZE) build $(LOCALBIN)/overlay
endef

.PHONY: deploy
deploy: manifests kustomize ## Deploy the operator and the auth proxy with image IMG (checks that cert-manager is installed first).
	@$(KUBECTL) get crd certificates.cert-manager.io issuers.cert-manager.io >/dev/null 2>&1 || { \
	  echo "cert-manager is not installed (no certificates.cert-manager.io / issuers.cert-manager.io CRDs): nothing was applied."; \
	  echo "The webhooks need it for their certificate; without it every key create would fail. Install cert-manager, or use the Helm chart with webhook.certManager.enabled=false."; \
	  exit 1; }
	$(call kustomize-image,config/default) | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the operator; CRDs, Workspaces, keys and the namespace stay (see uninstall).
	$(KUSTOMIZE) build config/undeploy | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -
	@echo "The CRDs, every Workspace and key, and their Secrets are left in place; 'make deploy' picks them up again."

.PHONY: build-installer
build-installer: manifests kustomize ## Write dist/install.yaml: everything config/default installs, in one file, with image IMG.
	@mkdir -p dist
	$(call kustomize-image,config/default) > dist/install.yaml

.PHONY: chart
chart: manifests kustomize ## Regenerate the chart's generated templates from config/ (hack/chartgen).
	{ $(KUSTOMIZE) build config/default; echo ---; $(KUSTOMIZE) build config/prometheus; } | go run ./hack/chartgen charts/octopods-operator/templates/generated

.PHONY: helm-package
helm-package: chart ## Package the chart into dist/ (Helm SDK; publishing: see README).
	go run ./hack/helmpackage charts/octopods-operator dist

##@ Tools (pinned, installed into bin/)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION),controller-gen)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT)
$(GOLANGCI_LINT):
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION),golangci-lint)

.PHONY: kustomize
kustomize: $(KUSTOMIZE)
$(KUSTOMIZE):
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION),kustomize)

# go-install-tool installs package $2 at version $3 (binary name $4) as $1, so
# that a version bump here installs the new binary instead of reusing the old.
define go-install-tool
@[ -f "$(1)" ] || { \
set -e; \
echo "installing $(2)@$(3)"; \
rm -f "$(1)"; \
GOBIN="$(LOCALBIN)" go install "$(2)@$(3)"; \
mv "$(LOCALBIN)/$(4)" "$(1)"; \
}
endef
