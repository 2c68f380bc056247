#!/usr/bin/env bash
# Bundles this machine's `perf` (Debian's linux-perf) with its libraries and dynamic loader into
# .smollm2/perf.tar.xz (about 8 MB), to carry to the GPU machine, which has no perf of its own. The
# hypervisor there gives software events only (cpu-clock, task-clock; no cycle or cache counters),
# which is enough for sampled call stacks. On that machine:
#
#   tar xJf .smollm2/perf.tar.xz -C .smollm2
#   P=".smollm2/perf/lib/ld-linux-x86-64.so.2 --library-path .smollm2/perf/lib .smollm2/perf/perf"
#   $P record -F 4000 -g -o /tmp/p.data BINARY ...
#   $P script -i /tmp/p.data -F tid,ip,sym > /tmp/stacks.txt && python3 bench/perf/threads.py /tmp/stacks.txt
#
# The binary must keep its symbol table: `pack.sh` of ../shared/device strips it, so carry
# `strip --strip-debug` of the same build instead (about 24 MB compressed for hifc).
set -euo pipefail
root="$(git rev-parse --show-toplevel)"
perf="$(readlink -f "$(command -v perf)")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/perf/lib" "$root/.smollm2"
cp "$perf" "$work/perf/perf"
ldd "$perf" | awk '/=> \//{print $3}' | xargs -I{} cp -L {} "$work/perf/lib/"
cp -L /lib64/ld-linux-x86-64.so.2 "$work/perf/lib/"
tar cJf "$root/.smollm2/perf.tar.xz" -C "$work" perf
ls -la "$root/.smollm2/perf.tar.xz"
