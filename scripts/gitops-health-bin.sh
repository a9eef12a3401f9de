#!/usr/bin/env bash
# Ensures the gitops-health test tool exists and prints its path as the last line on stdout:
#
#   tool=$(scripts/gitops-health-bin.sh | tail -n 1)
#
# gitops-health (tools/gitops-health, its own Go module: go.mod + committed go.sum pin sigs.k8s.io/cli-utils
# and github.com/yuin/gopher-lua) says what Flux (kstatus) and Argo CD (a resource health Lua script) report
# for an object; tests/gitops_health.rs runs it over charts/faxbot-operator/argocd. Built and cached
# by scripts/go-tool-bin.sh (the cache key covers the tool's own Go sources too).
#
# Cold build, measured on two shared cores under nice (go 1.26.8, CGO_ENABLED=0, -trimpath): 27 s with empty Go
# build and module caches (modules fetched from the Go module proxy), 26 s with the modules already downloaded;
# a cached run takes about 10 ms.
set -euo pipefail
exec "$(dirname "$0")/go-tool-bin.sh" gitops-health gitops-health .
