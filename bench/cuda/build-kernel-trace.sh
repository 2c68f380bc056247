#!/bin/bash
# Builds kernel_trace.c on the development machine (no CUDA toolkit there) against CUPTI 13.0 from
# PyPI, and puts it with its libcupti.so.13 in .device/cupti/, which gpu-visit.sh's trace step
# uses (carry .device). CUDA 13.0 is the GPU machine's driver version: a newer CUPTI may not run on it.
set -euo pipefail
cd "$(dirname "$0")/../.."
wheels=$(mktemp -d); trap 'rm -rf "$wheels"' EXIT
for pkg in nvidia-cuda-cupti nvidia-cuda-runtime nvidia-cuda-crt; do
    pip download -q --no-deps -d "$wheels" "$pkg==13.0.*"
done
for w in "$wheels"/*.whl; do unzip -qo "$w" -d "$wheels/tree"; done
cu="$wheels/tree/nvidia/cu13"
mkdir -p .device/cupti
gcc -O2 -Wall -Wextra -shared -fPIC -I"$cu/include" bench/cuda/kernel_trace.c -o .device/cupti/kernel_trace.so \
    -L"$cu/lib" -l:libcupti.so.13
cp "$cu/lib/libcupti.so.13" .device/cupti/
echo "built .device/cupti/kernel_trace.so"
