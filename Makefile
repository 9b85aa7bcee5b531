# dpfdoctor — see README.md. Every target works on a fresh machine: the
# envtest binaries and golangci-lint are built from the Go module proxy on
# first use and cached outside the repo (hack/envtest.sh, hack/tools.sh).
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -buildvcs=false
export GOTOOLCHAIN ?= local
BIN := bin/dpfdoctor
PKGS := ./...
FUZZTIME ?= 10s

.PHONY: all build test test-unit demo bench lint tools envtest fuzz fuzz-short generate verify-generate clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/dpfdoctor

tools:
	@hack/tools.sh golangci-lint

envtest:
	@hack/envtest.sh >/dev/null && echo "envtest assets: $$(hack/envtest.sh)"

# The README's test command: lint, generated docs up to date, every test
# (unit and envtest), and a short fuzz budget per parser.
test: lint verify-generate envtest
	KUBEBUILDER_ASSETS=$$(hack/envtest.sh) $(GO) test -count=1 -timeout 45m $(PKGS)
	$(MAKE) fuzz-short

# Unit tests only: -short skips every test that starts an API server.
test-unit:
	$(GO) test -short $(PKGS)

demo: build envtest
	KUBEBUILDER_ASSETS=$$(hack/envtest.sh) hack/demo.sh

bench: envtest
	@mkdir -p bench
	KUBEBUILDER_ASSETS=$$(hack/envtest.sh) hack/bench.sh

# gofmt, go vet, then golangci-lint (.golangci.yml) at the version
# hack/tools.sh pins; it is built from the Go module proxy on first use.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@gl=$$(hack/tools.sh golangci-lint) && echo "$$gl run $(PKGS)" && $$gl run $(PKGS)

generate:
	$(GO) generate ./...

verify-generate:
	@hack/verify-generate.sh

fuzz-short:
	@hack/fuzz.sh $(FUZZTIME)

fuzz:
	@hack/fuzz.sh 2m

clean:
	rm -rf bin
