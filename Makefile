# weft — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS):$(PATH)

PROTOC_GEN_GO_VERSION := v1.36.6
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
STATICCHECK_VERSION := v0.8.2
PROTOS := $(shell find api -name '*.proto')

.PHONY: help
help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Static binaries without gRPC's x/net/trace (and the html/template it
# links), which weft never serves: weft-proxy's idle RSS is mostly its own
# mapped binary, and these cut it from 18.6 to 14.9 MiB
# (docs/benchmarks.md).
BUILD_FLAGS := -tags grpcnotrace

.PHONY: build
build: ## build bin/weft and bin/weft-proxy
	CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o $(BIN)/ ./cmd/weft ./cmd/weft-proxy

.PHONY: demo
demo: build ## build everything and run `weft up --demo`
	$(BIN)/weft up --demo

.PHONY: deps
deps: ## install the Debian packages the tests need (run as root)
	./scripts/install-deps.sh

.PHONY: test
test: deps build lint check-gen kube-tools bench-tools ## the full suite: lint, generated code, unit tests, end-to-end tests on the real binaries, the bench's smoke run
	$(GO) test -count=1 -race ./...
	WEFT_BIN=$(BIN) $(GO) test -count=1 -tags e2e -timeout 15m ./test/e2e/...
	$(MAKE) --no-print-directory bench-smoke

.PHONY: bench-tools
bench-tools: ## install the bench's peers and clients: nginx, HAProxy, h2load (Debian), fortio and Caddy (built into .tools, cached)
	GO=$(GO) ./bench/install.sh

$(BIN)/weftbench: $(wildcard bench/*.go bench/*/*.tmpl)
	$(GO) build -o $@ ./bench

# BENCH_FLAGS passes -duration, -rates or -setups to `make bench`.
BENCH_FLAGS ?=

.PHONY: bench
bench: build bench-tools $(BIN)/weftbench ## the data-plane benchmark against nginx, HAProxy, Caddy and the Go standard library (about 14 minutes): bench/results, docs/benchmarks.md, docs/images/bench-*.png
	$(BIN)/weftbench $(BENCH_FLAGS)

.PHONY: bench-smoke
bench-smoke: build bench-tools $(BIN)/weftbench ## every bench setup and workload once at a tiny size: checks each runs without error, times nothing
	$(BIN)/weftbench -smoke

.PHONY: kube-tools
kube-tools: ## build .tools/kube-apiserver for the Kubernetes tests (only when tools/kube changed; cached)
	GO=$(GO) ./tools/kube/build.sh

.PHONY: test-unit
test-unit: ## unit tests only
	$(GO) test -count=1 -race ./...

.PHONY: test-e2e
test-e2e: build ## end-to-end tests only
	WEFT_BIN=$(BIN) $(GO) test -count=1 -tags e2e -timeout 15m -v ./test/e2e/...

.PHONY: lint
lint: $(TOOLS)/staticcheck ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/...
	$(TOOLS)/staticcheck ./...

.PHONY: gen
gen: $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc ## regenerate the protobuf Go code
	@command -v protoc >/dev/null || { echo "protoc missing: make deps"; exit 1; }
	protoc --go_out=. --go_opt=paths=source_relative \
	       --go-grpc_out=. --go-grpc_opt=paths=source_relative $(PROTOS)

.PHONY: check-gen
check-gen: gen ## prove the generated code is current
	git diff --exit-code -- api/

$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: bench-controlplane
bench-controlplane: ## control-plane scale harness (issue 7: 10k services, 100k endpoints, 2k proxies); BENCH_CONTROLPLANE_FLAGS="-services 500 ..." for another scale
	$(GO) run ./bench/controlplane $(BENCH_CONTROLPLANE_FLAGS)
