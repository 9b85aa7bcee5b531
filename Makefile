# dpfdoctor — see README.md. Every target works on a fresh machine: the
# envtest binaries and golangci-lint are built from the Go module proxy on
# first use and cached outside the repo (hack/envtest.sh, hack/tools.sh).
SHELL := /bin/bash
GO ?= go
# -trimpath, as the release is built (.goreleaser.yaml): the tests, vet and
# the snapshot's linux/amd64 build then share one compile of every package.
export GOFLAGS ?= -buildvcs=false -trimpath
export GOTOOLCHAIN ?= local
# Pure Go, as the release is built (.goreleaser.yaml): the tests run what
# ships, and a test binary links in a third of the time without the
# external linker.
export CGO_ENABLED ?= 0
# envtest gives each kube-apiserver and etcd 20 s to start, then kills and
# retries it. With several test packages each starting API servers on two
# busy cores, a start can take longer, and the retries only add load.
export KUBEBUILDER_CONTROLPLANE_START_TIMEOUT ?= 2m
BIN := bin/dpfdoctor
PKGS := ./...
FUZZTIME ?= 10s
# Test binaries without DWARF and symbol table: the links of the suite's
# forty binaries were a third of its CPU time (bench/test-time.md); stack
# traces keep their file:line.
TESTLDFLAGS := -ldflags='-s -w'
# The slowest test packages first, and three at a time: the envtest tests
# mostly wait (bench/test-time.md), so a third package fills the cores.
TESTPKGS := ./internal/doctor ./internal/evidence ./internal/guard ./internal/apply ./internal/sandbox ./internal/sim ./test/e2e ./internal/cli ./...

.PHONY: all build test test-unit test-e2e-1.31 demo bench lint tools envtest bwrap fuzz fuzz-short generate verify-generate release test-release clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/dpfdoctor

tools:
	@hack/tools.sh golangci-lint

# Both pinned API server sets (README, support matrix): 1.37 and 1.31.
envtest:
	@d=$$(hack/envtest.sh all) && echo "envtest assets:" $$d

# bubblewrap, for the sandbox tests (internal/sandbox); installed when missing.
bwrap:
	@hack/bwrap.sh >/dev/null

# The README's test command: lint, generated docs up to date, every test
# (unit and envtest) on Kubernetes 1.37, the black-box e2e suite again on
# Kubernetes 1.31, a short fuzz budget per parser, and the release snapshot.
test: lint verify-generate envtest bwrap
	KUBEBUILDER_ASSETS=$$(hack/envtest.sh) $(GO) test -p 3 -count=1 $(TESTLDFLAGS) -timeout 45m $(TESTPKGS)
	$(MAKE) test-e2e-1.31
	$(MAKE) fuzz-short
	$(MAKE) test-release

# The black-box e2e suite (test/e2e) against the oldest supported API server.
test-e2e-1.31:
	KUBEBUILDER_ASSETS=$$(hack/envtest.sh 1.31) $(GO) test -count=1 $(TESTLDFLAGS) -timeout 20m ./test/e2e/...

# Unit tests only: -short skips every test that starts an API server.
test-unit:
	$(GO) test -short $(PKGS)

demo: build
	KUBEBUILDER_ASSETS=$$(hack/envtest.sh) hack/demo.sh

bench:
	@mkdir -p bench
	KUBEBUILDER_ASSETS=$$(hack/envtest.sh) hack/bench.sh

# gofmt, the shared modules at Kubernetes' versions (hack/verify-deps.sh),
# go vet, then golangci-lint (.golangci.yml) at the version hack/tools.sh
# pins; it is built from the Go module proxy on first use.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@hack/verify-deps.sh
	$(GO) vet $(PKGS)
	@gl=$$(hack/tools.sh golangci-lint) && echo "$$gl run $(PKGS)" && $$gl run $(PKGS)

# An offline goreleaser snapshot into dist/ (.goreleaser.yaml): archives for
# linux and darwin on amd64 and arm64, checksums, SBOMs, the krew manifest.
release:
	@hack/release.sh

# The snapshot, then its check (cmd/dpfdoctor/release_test.go): names,
# checksums, SBOMs, each binary's version, the krew manifest.
test-release: release
	$(GO) test -tags release -count=1 -run '^TestRelease$$' ./cmd/dpfdoctor/

generate:
	$(GO) generate ./...

verify-generate:
	@hack/verify-generate.sh

fuzz-short:
	@hack/fuzz.sh $(FUZZTIME)

fuzz:
	@hack/fuzz.sh 2m

clean:
	rm -rf bin dist
