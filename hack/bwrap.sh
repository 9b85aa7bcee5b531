#!/usr/bin/env bash
# Make sure bubblewrap is installed: the sandbox that runs a real dmsinit.sh
# (sim up --dmsinit-script, lint --dynamic, internal/sandbox tests) uses it.
# CI runs as root on Debian, so a missing bwrap is installed with apt-get.
# Where that is impossible, util-linux unshare is the sandbox's fallback
# (docs/sim.md), but the tests run both launchers and need both.
set -euo pipefail
if ! command -v bwrap >/dev/null; then
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
		echo "bwrap.sh: bubblewrap is missing; install the bubblewrap package (without it the sandbox falls back to unshare)" >&2
		exit 1
	fi
	apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null
fi
command -v unshare >/dev/null || { echo "bwrap.sh: unshare (util-linux) is missing" >&2; exit 1; }
bwrap --version
