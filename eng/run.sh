#!/usr/bin/env bash
# Installs what Platform needs (eng/install.sh) and runs the AppHost: every resource on this machine under Aspire's
# orchestrator, the Aspire dashboard on http://localhost:18888 (the login link is printed). Extra arguments go to the
# AppHost (e.g. --Parameters:admin-api-key=..., or --publisher manifest --output-path aspire-manifest.json).
# `dotnet aspire run` starts the same AppHost through the aspire CLI.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 ASPIRE_CLI_TELEMETRY_OPTOUT=1
bash eng/install.sh
exec dotnet run --project AppHost -c Debug -- "$@"
