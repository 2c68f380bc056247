#!/usr/bin/env bash
# The same `hifc bench serve` rate sweep against `hifc serve` and llama.cpp's `llama-server` on one
# GGUF file, the same threads, the same KV capacity and the same number of sequences at once; the
# servers take turns (ROUNDS times each), one at a time, and the load average is logged around each.
#
#   HIFC=hifc LLAMA_BIN=DIR GGUF=FILE OUT=DIR bash bench/llamacpp/serve_vs_llama.sh
#
# Environment: HIFC, LLAMA_BIN (folder with llama-server: bench/llamacpp/build.sh prints it), GGUF,
# OUT (serve-vs-llama), THREADS (2), SLOTS (8: llama-server's -np, hifc's --max-running),
# CONTEXT (8192 tokens of KV in all: llama-server's -c, hifc's --kv-budget in 16-token blocks),
# RATES (0.5,1,2,4,inf), NUM_PROMPTS (32), INPUT_LEN (128), OUTPUT_LEN (64), GOODPUT
# (ttft:2000 tpot:100), ROUNDS (1), PORT (8150), LLAMA_ARGS (more llama-server flags, e.g. --poll 0),
# SERVERS (hifc llama: which run, in this order each round), DATASET (a ShareGPT JSON file: its
# conversations instead of INPUT_LEN words, counted with the GGUF's tokenizer; OUTPUT_LEN then fixes
# every output, unset: each recorded reply's length; give each slot 2048 tokens of CONTEXT, the
# bound on a dataset request, since llama-server does not report its slots' context).
# Writes OUT/{hifc,llama}-ROUND.{json,csv,svg,log} and OUT/load.txt; prints a line per rate.
set -uo pipefail
hifc=$(realpath "${HIFC:?HIFC=hifc binary}")
llama_bin="${LLAMA_BIN:?LLAMA_BIN=folder with llama-server}"
gguf=$(realpath "${GGUF:?GGUF=model file}")
out="${OUT:-serve-vs-llama}"; mkdir -p "$out"
threads="${THREADS:-2}"; slots="${SLOTS:-8}"; context="${CONTEXT:-8192}"; port="${PORT:-8150}"
read -r -a goodput <<< "${GOODPUT:-ttft:2000 tpot:100}"
read -r -a llama_args <<< "${LLAMA_ARGS:-}"
run_dir=$(mktemp -d)
trap 'rm -rf "$run_dir"' EXIT

load() { echo "$(date -u +%H:%M:%S) $1: load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"; }

if [ -n "${DATASET:-}" ]; then
    requests=(--dataset-path "$(realpath "$DATASET")" --tokenizer "$gguf" ${OUTPUT_LEN:+--output-len "$OUTPUT_LEN"})
    lengths="completions, ShareGPT $(basename "$DATASET")${OUTPUT_LEN:+, output $OUTPUT_LEN}"
else
    requests=(--input-len "${INPUT_LEN:-128}" --output-len "${OUTPUT_LEN:-64}")
    lengths="completions, input ${INPUT_LEN:-128}, output ${OUTPUT_LEN:-64}"
fi

sweep() {  # server name, label; the server listens on $port
    local name=$1 label=$2 rc
    "$hifc" bench serve --base-url "http://127.0.0.1:$port" --num-prompts "${NUM_PROMPTS:-32}" \
        "${requests[@]}" --request-rate "${RATES:-0.5,1,2,4,inf}" \
        --goodput "${goodput[@]}" --json --csv "$out/$name.csv" --plot "$out/$name.svg" --label "$label" \
        > "$out/$name.json" 2> "$out/$name.log"
    rc=$?
    echo "$name: bench serve rc=$rc"
    python3 - "$out/$name.csv" <<'EOF'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    f = lambda k: float(r[k] or 0)
    print(f"  rate {r['request_rate']}: {r['completed']}/{r['requests']} done, {f('request_throughput'):.2f} req/s, "
          f"{f('output_token_throughput'):.0f} out tok/s, TTFT p50/p99 {f('ttft_p50_ms'):.0f}/{f('ttft_p99_ms'):.0f} ms, "
          f"TPOT p50/p99 {f('tpot_p50_ms'):.1f}/{f('tpot_p99_ms'):.1f} ms, goodput {f('goodput'):.2f} req/s, "
          f"in/out {f('mean_input_tokens'):.0f}/{f('mean_output_tokens'):.0f}")
EOF
}

wait_up() {  # pid
    for _ in $(seq 1 240); do
        curl -sf "localhost:$port/health" > /dev/null && return 0
        kill -0 "$1" 2> /dev/null || return 1
        sleep 0.5
    done
    return 1
}

llama_name="llama.cpp $(basename "$(dirname "$llama_bin")")"

start_server() {  # hifc or llama, round; sets pid and label
    if [ "$1" = hifc ]; then
        # Prefix cache and flash swap as hifc serve has them by default; --kv-budget in 16-token blocks.
        (cd "$run_dir" && exec "$hifc" serve --model "$gguf" --port "$port" --device cpu --threads "$threads" \
            --max-running "$slots" --kv-budget $((context / 16)) --block-size 16) > "$out/hifc-$2-server.log" 2>&1 &
        label="hifc serve, $(basename "$gguf"), CPU $threads threads, $slots sequences, $context tokens of KV; $lengths"
    else
        # The same threads for generation and prompts; -np slots sharing -c tokens of KV.
        "$llama_bin/llama-server" -m "$gguf" --host 127.0.0.1 --port "$port" -t "$threads" -tb "$threads" -np "$slots" \
            -c "$context" "${llama_args[@]}" > "$out/llama-$2-server.log" 2>&1 &
        label="llama-server ($llama_name), $(basename "$gguf"), $threads threads, $slots slots, $context tokens of KV; $lengths"
    fi
    pid=$!
}

for round in $(seq 1 "${ROUNDS:-1}"); do
    for server in ${SERVERS:-hifc llama}; do
        start_server "$server" "$round"
        if wait_up $pid; then
            load "$server round $round start"
            sweep "$server-$round" "$label"
            load "$server round $round end"
        else
            echo "$server did not come up: $(tail -2 "$out/$server-$round-server.log")"
        fi
        kill $pid; wait $pid 2> /dev/null
    done
done
