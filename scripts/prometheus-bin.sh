#!/usr/bin/env bash
# Ensures a Prometheus server binary exists and prints its path as the last line on stdout:
#
#   prometheus=$(scripts/prometheus-bin.sh | tail -n 1)
#
# Prometheus is built from its Go module (github.com/prometheus/prometheus/cmd/prometheus, pinned by
# tools/prometheus/go.mod + go.sum) by scripts/go-tool-bin.sh, for the end-to-end test of canary analysis
# through Prometheus (tests/e2e/prometheus.rs): a real Prometheus discovers the API pods through the
# test cluster's API server and scrapes them, and the operator queries its HTTP API. The web UI's assets are
# not built in (the `builtinassets` tag is off): the test uses the API only.
#
# Cold build, measured on two shared cores under nice with Rust builds running beside it: 17.5 min with empty
# Go module and build caches (about 650 modules); a cached run takes about 10 ms.
set -euo pipefail
exec "$(dirname "$0")/go-tool-bin.sh" prometheus prometheus github.com/prometheus/prometheus/cmd/prometheus
