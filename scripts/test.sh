#!/usr/bin/env bash
# Runs the whole test suite. The reference checks use NumPy, and the kernel build check uses
# NVRTC from PyPI (no GPU needed); both are installed here if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
python3 -c 'import numpy' 2>/dev/null || need+=(numpy)
python3 -c "import tokenizers" 2>/dev/null || need+=(tokenizers)
python3 -c "import nvidia.cu13" 2>/dev/null || python3 -c "import nvidia.cuda_nvrtc" 2>/dev/null || need+=("nvidia-cuda-nvrtc==13.0.88")
if [ ${#need[@]} -gt 0 ]; then
  python3 -m pip install -q "${need[@]}"
fi
swift build --build-tests
swift test --skip-build "$@"
