#!/usr/bin/env bash
# Build a release snapshot offline into dist/: goreleaser (pinned, built by
# hack/tools.sh) with --snapshot, so nothing is published, signed, pushed or
# announced. Archives for linux and darwin on amd64 and arm64, the plugin
# archives, checksums, CycloneDX SBOMs and the krew manifest
# (.goreleaser.yaml). `make test-release` checks them.
set -euo pipefail
cd "$(dirname "$0")/.."
goreleaser=$(hack/tools.sh goreleaser)
cdx=$(hack/tools.sh cyclonedx-gomod)
export PATH=$(dirname "$cdx"):$PATH
# goreleaser reads the commit only when `git ls-remote --get-url` works; a
# clone without a remote gets the project's URL from the environment.
if ! git ls-remote --get-url >/dev/null 2>&1; then
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0=https://github.com/dpfdoctor/dpfdoctor.git
fi
# One build at a time: each `go build` already uses every core, and the two
# builds per platform (dpfdoctor, kubectl-dpfdoctor) compile the same
# packages, so the second must start after the first to find them in the
# build cache instead of compiling them again beside it.
start=$(date +%s)
echo "release: goreleaser snapshot into dist/; after the tests, with three platforms still to compile, it takes about 7.5 minutes on 2 idle cores (bench/test-time.md), warm 1.5 minutes" >&2
"$goreleaser" release --snapshot --clean --parallelism 1 --skip=publish,sign,docker,ko,announce,validate
echo "release: snapshot built in $(( $(date +%s) - start ))s" >&2
