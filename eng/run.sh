#!/usr/bin/env bash
# Installs what Platform needs (eng/install.sh) and runs the AppHost: every resource on this machine,
# the dashboard on http://127.0.0.1:18888. Extra arguments go to the AppHost
# (e.g. --dashboard-port 0, or --publisher manifest --output-path aspire-manifest.json).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
bash eng/install.sh
exec dotnet run --project AppHost -c Debug -- "$@"
