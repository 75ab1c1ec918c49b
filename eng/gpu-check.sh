#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU, proves in under five minutes that Platform runs models on CUDA.
#   1. builds the ONNX Runtime tests, the worker tests and the serving benchmark;
#   2. runs tests/Platform.OnnxRuntime.Tests and tests/Platform.Worker.Tests with PLATFORM_TEST_EXECUTION_PROVIDER=cuda:
#      the CUDA tests must pass (the session reports CUDA, its inputs live on the GPU, ONNX Runtime's profile shows the
#      Gemm kernels on CUDAExecutionProvider, outputs equal the CPU's within tolerance) and the platform's worker
#      replicas run with ModelWorker__ExecutionProvider=cuda;
#   3. runs the serving benchmark once with --execution-provider cuda and prints its RESULT lines.
# Without a GPU (nvidia-smi absent or failing, or no /dev/nvidia0) it says so and exits 0 without running anything.
# Needs what eng/install.sh installs (the worker tests start the whole platform) plus the CUDA 13 runtime, cuBLAS and
# cuDNN 9 libraries on the loader path (docs/onnxruntime.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU on this machine (nvidia-smi not found); nothing was checked."
  exit 0
fi
if [[ ! -e /dev/nvidia0 ]] || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU on this machine (no /dev/nvidia0, or nvidia-smi finds no device); nothing was checked."
  exit 0
fi

started=$SECONDS
echo "gpu-check: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
"$root/eng/install.sh"

echo "gpu-check: build"
dotnet build tests/Platform.OnnxRuntime.Tests --nologo -v quiet
dotnet build tests/Platform.Worker.Tests --nologo -v quiet
dotnet build -c Release bench/Platform.Bench.Serving --nologo -v quiet

export PLATFORM_TEST_EXECUTION_PROVIDER=cuda
status=0
echo "gpu-check: ONNX Runtime tests on CUDA"
dotnet test tests/Platform.OnnxRuntime.Tests --no-build --nologo || status=1
echo "gpu-check: worker tests on CUDA"
dotnet test tests/Platform.Worker.Tests --no-build --nologo || status=1

echo "gpu-check: serving benchmark on CUDA"
log="$(mktemp)"
if dotnet run -c Release --no-build --project bench/Platform.Bench.Serving -- --execution-provider cuda --seconds 2 >"$log" 2>&1; then
  grep -E '^raw ORT 1\.|^RESULT ' "$log"
else
  tail -20 "$log"; status=1
fi
rm -f "$log"

echo "gpu-check: $([[ $status == 0 ]] && echo passed || echo FAILED) in $((SECONDS - started)) s"
exit $status
