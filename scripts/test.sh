#!/usr/bin/env bash
# Runs the whole test suite. The Python packages the tests use are installed here if missing:
# NumPy, tokenizers and gguf (reference checks: HF tokenization, GGML dequantization, GGUF files
# written by gguf-py), NVRTC from PyPI (the kernel build check, no GPU needed) and the official
# `openai` client (the server's client test).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
python3 -c 'import numpy' 2>/dev/null || need+=(numpy)
python3 -c 'import openai' 2>/dev/null || need+=(openai)
python3 -c "import tokenizers" 2>/dev/null || need+=(tokenizers)
python3 -c "import gguf" 2>/dev/null || need+=(gguf)
# The nvidia-cuda-nvrtc 13 wheel puts libnvrtc.so.13 in site-packages/nvidia/cu13/lib (a namespace
# package that other cu13 wheels share), so look for the library itself, not the import.
python3 - <<'PY' 2>/dev/null || need+=("nvidia-cuda-nvrtc==13.0.88")
import glob, site, sys
dirs = site.getsitepackages() + [site.getusersitepackages()]
sys.exit(0 if any(glob.glob(d + "/nvidia/*/lib/libnvrtc.so.1[23]") for d in dirs) else 1)
PY
if [ ${#need[@]} -gt 0 ]; then
  # --root-user-action: CI installs as root into its own interpreter, which pip would warn about.
  python3 -m pip install -q --root-user-action=ignore "${need[@]}"
fi
swift build --build-tests
# XCTest only: the suite has no Swift Testing tests, and its empty run would close the log.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
swift test --skip-build --disable-swift-testing "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The chaos suite's short form against the built server (scripts/chaos/chaos.py; under a minute),
# unless only some tests were asked for.
chaos=""
if [ $# -eq 0 ]; then
  python3 scripts/chaos/chaos.py --short --binary "$(swift build --show-bin-path)/hifc" 2>&1 | tee -a "$log"
  chaos_status=${PIPESTATUS[0]}
  chaos=$(grep -E "^chaos: " "$log" | tail -1)
  [ "$chaos_status" -eq 0 ] || status=$chaos_status
fi
set -e
# One plain summary line last, from XCTest's own count.
summary=$(grep -E "Executed [0-9]+ tests?, with" "$log" | tail -1)
total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
skipped=$(grep -oE "with [0-9]+ tests? skipped" <<<"$summary" | grep -oE "[0-9]+" || echo 0)
failed=$(grep -oE "and [0-9]+ failures?|with [0-9]+ failures?" <<<"$summary" | grep -oE "[0-9]+" || echo 0)
if [ -n "$chaos" ]; then
  echo "$chaos"
fi
if [ -n "$total" ]; then
  echo "tests: $((total - skipped - failed)) passed, $failed failed, $skipped skipped"
fi
exit "$status"
