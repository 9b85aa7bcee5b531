#!/usr/bin/env bash
# Build a release snapshot offline into dist/: goreleaser (pinned, built by
# hack/tools.sh) with --snapshot, so nothing is published, signed, pushed or
# announced. Archives for linux and darwin on amd64 and arm64, the plugin
# archives, checksums, CycloneDX SBOMs and the krew manifest
# (.goreleaser.yaml). The artefacts are checked by `make test-release`.
set -euo pipefail
cd "$(dirname "$0")/.."
goreleaser=$(hack/tools.sh goreleaser)
cdx=$(hack/tools.sh cyclonedx-gomod)
export PATH=$(dirname "$cdx"):$PATH
start=$(date +%s)
echo "release: goreleaser snapshot into dist/" >&2
"$goreleaser" release --snapshot --clean --skip=publish,sign,docker,ko,announce,validate
echo "release: snapshot built in $(( $(date +%s) - start ))s" >&2
