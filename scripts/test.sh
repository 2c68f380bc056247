#!/usr/bin/env bash
# Runs the whole test suite. The reference checks use NumPy, and the kernel build check uses
# NVRTC from PyPI (no GPU needed); both are installed here if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
python3 -c 'import numpy' 2>/dev/null || need+=(numpy)
# The nvidia-cuda-nvrtc 13 wheel puts libnvrtc.so.13 in site-packages/nvidia/cu13/lib (a namespace
# package that other cu13 wheels share), so look for the library itself, not the import.
python3 - <<'PY' 2>/dev/null || need+=("nvidia-cuda-nvrtc==13.0.88")
import glob, site, sys
dirs = site.getsitepackages() + [site.getusersitepackages()]
sys.exit(0 if any(glob.glob(d + "/nvidia/*/lib/libnvrtc.so.1[23]") for d in dirs) else 1)
PY
if [ ${#need[@]} -gt 0 ]; then
  python3 -m pip install -q "${need[@]}"
fi
swift build --build-tests
swift test --skip-build "$@"
