#!/usr/bin/env bash
# Installs everything Platform needs on a Debian 12 machine, and nothing it already has.
# Idempotent: a second run takes about a second.
#   apt : postgresql (15), redis-server, nodejs + npm (only if node is absent), wrk (serving benchmark), chromium (browser tests)
#   dotnet tools: the aspire CLI (.config/dotnet-tools.json)
#   npm : s3rver 3.7.1 (local object store), pinned by eng/tools/package-lock.json and installed without
#         lifecycle scripts; the manifest tests' Kubernetes schema validators (tests/Platform.Manifests.Tests/validator) and the
#         serving tests' independent gRPC client (tests/Platform.Serving.Tests/grpc-node-client: @grpc/grpc-js, @grpc/proto-loader).
# ONNX Runtime is not installed here: it comes from NuGet (Microsoft.ML.OnnxRuntime.Gpu.Linux) with `dotnet restore`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need_apt=()
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || need_apt+=(postgresql postgresql-contrib)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v setpriv >/dev/null || need_apt+=(util-linux)
# The serving benchmark's independent load generator (bench/Platform.Bench.Serving checks its own client against it).
command -v wrk >/dev/null || need_apt+=(wrk)
if [[ "${PLATFORM_INSTALL_BROWSER:-0}" == "1" ]]; then
  command -v chromium >/dev/null || need_apt+=(chromium)
fi
if ! command -v dotnet >/dev/null; then
  echo "error: the .NET SDK 10.0.4xx is required (see global.json); install it and re-run." >&2
  exit 1
fi

# kubectl (with kustomize) renders the Kubernetes overlays in the manifest tests. It is not in Debian's
# apt; Platform's machines ship it. Say so instead of failing later with a less clear error.
command -v kubectl >/dev/null || echo "warning: kubectl not found; tests/Platform.Manifests.Tests need kubectl >= 1.27 (kustomize v5) on PATH" >&2

if (( ${#need_apt[@]} )); then
  echo "install: apt-get install ${need_apt[*]}"
  sudo_cmd=""; [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The Debian package starts a cluster service on 5432; Platform runs its own servers.
  if command -v systemctl >/dev/null && systemctl is-active --quiet postgresql 2>/dev/null; then
    $sudo_cmd systemctl stop postgresql || true
  fi
fi

tools="$root/eng/tools"
if [[ ! -f "$tools/node_modules/.package-lock.json" || "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]]; then
  echo "install: npm ci in eng/tools (s3rver)"
  (cd "$tools" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
# Kubernetes schema validators used by tests/Platform.Manifests.Tests (pinned by their own lockfile).
validator="$root/tests/Platform.Manifests.Tests/validator"
if [[ -f "$validator/package-lock.json" ]] && [[ ! -f "$validator/node_modules/.package-lock.json" || "$validator/package-lock.json" -nt "$validator/node_modules/.package-lock.json" ]]; then
  echo "install: npm ci in tests/Platform.Manifests.Tests/validator (kubernetes-models)"
  (cd "$validator" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
# The serving tests' independent gRPC client (pinned by its own lockfile).
grpc_node="$root/tests/Platform.Serving.Tests/grpc-node-client"
if [[ -f "$grpc_node/package-lock.json" ]] && [[ ! -f "$grpc_node/node_modules/.package-lock.json" || "$grpc_node/package-lock.json" -nt "$grpc_node/node_modules/.package-lock.json" ]]; then
  echo "install: npm ci in tests/Platform.Serving.Tests/grpc-node-client (@grpc/grpc-js, @grpc/proto-loader)"
  (cd "$grpc_node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

# The aspire CLI (dotnet aspire run / describe / logs), pinned in .config/dotnet-tools.json.
if [[ ! -f "$HOME/.nuget/packages/aspire.cli/13.6.5/aspire.cli.13.6.5.nupkg.sha512" ]]; then
  echo "install: dotnet tool restore (aspire CLI)"
  (cd "$root" && dotnet tool restore >/dev/null)
fi
