#!/usr/bin/env bash
# Rate sweeps of `hifc bench serve` against `hifc serve`, once per server setting, each plotted:
#   flash: the flash tier on: preempted sequences swapped to flash (swap-flash), the prefix cache on
#          (on the device and on flash);
#   off:   the flash tier off: preempted sequences recomputed, no prefix cache.
# The same requests (same seed) in both; the KV budget is set so the higher rates preempt.
#
#   HIFC=.device/hifc MODEL=DIR DEVICE=cuda OUT=DIR bash bench/serve_sweep.sh
#
# Environment (defaults for the 8B shape on one H200; about 2.5 minutes a setting, weights from the
# page cache):
#   HIFC (hifc), MODEL (required: a model directory, also the client's tokenizer), DEVICE (cuda),
#   OUT (serve-sweep), WORK (/var/tmp/hifc: the flash directory WORK/serve-flash), PORT (8013),
#   SETTINGS ("flash off"), KV_BUDGET (2GiB: 16K tokens of the 8B shape, about 7 of these requests),
#   BLOCK_SIZE (64), MAX_BATCH_TOKENS (4096), FLASH_CAPACITY (14GiB: every request of a run swapped out
#   at once fits, 40 x 2304 tokens x 128 KiB), PREFIX_FLASH (1GiB), RATES (1,2,4,8,inf),
#   NUM_PROMPTS (40), LENGTHS (--input-len 1024 --output-len 256 --shared-prefix 1024
#   --prefix-groups 4: 2048-token prompts whose first 1024 tokens are one of 4 documents),
#   GOODPUT (ttft:2000 tpot:50), SERVE_ARGS (more `hifc serve` flags, e.g. --threads 2).
# Writes OUT/serve-sweep-SETTING.{json,csv,svg,log} and the server's log; prints the CSVs.
set -uo pipefail
hifc="${HIFC:-hifc}"
[[ "$hifc" == */* ]] && hifc=$(realpath "$hifc")  # the server runs in its own directory
model="${MODEL:?MODEL=model directory}"
out="${OUT:-serve-sweep}"; mkdir -p "$out"
work="${WORK:-/var/tmp/hifc}"
port="${PORT:-8013}"
device="${DEVICE:-cuda}"
read -r -a lengths <<< "${LENGTHS:---input-len 1024 --output-len 256 --shared-prefix 1024 --prefix-groups 4}"
read -r -a extra <<< "${SERVE_ARGS:-}"
status=0
for setting in ${SETTINGS:-flash off}; do
    case "$setting" in
        # The 4 shared documents take 0.5 GiB of the 8B shape's KV: a 1 GiB share of flash for the
        # prefix cache leaves the rest of the region to swaps (by default it would take half).
        flash) tier=(--preemption swap-flash --prefix-cache on --prefix-cache-flash-size "${PREFIX_FLASH:-1GiB}")
            what="flash tier on (swap-flash, prefix cache)" ;;
        off) tier=(--preemption recompute --prefix-cache off); what="flash tier off (recompute, no prefix cache)" ;;
        *) echo "serve_sweep.sh: unknown setting $setting (flash or off)" >&2; exit 2 ;;
    esac
    flash="$work/serve-flash"; rm -rf "$flash"; mkdir -p "$flash"
    run="$work/serve-run"; rm -rf "$run"; mkdir -p "$run"
    # A fresh server per setting (and a fresh flash directory: nothing cached from the run before).
    (cd "$run" && exec "$hifc" serve --model "$model" --device "$device" --port "$port" --kv-budget "${KV_BUDGET:-2GiB}" \
        --block-size "${BLOCK_SIZE:-64}" --max-batch-tokens "${MAX_BATCH_TOKENS:-4096}" --flash-path "$flash" \
        --flash-capacity "${FLASH_CAPACITY:-14GiB}" "${tier[@]}" "${extra[@]}") > "$out/serve-$setting.log" 2>&1 &
    pid=$!
    up=0
    for _ in $(seq 1 600); do
        curl -sf "localhost:$port/health" > /dev/null && { up=1; break; }
        kill -0 $pid 2> /dev/null || break
        sleep 0.5
    done
    if [ "$up" != 1 ]; then
        echo "serve_sweep.sh: hifc serve ($setting) did not come up; its log:" >&2; tail -5 "$out/serve-$setting.log" >&2
        kill $pid 2> /dev/null; wait $pid 2> /dev/null; status=1; continue
    fi
    read -r -a goodput <<< "${GOODPUT:-ttft:2000 tpot:50}"
    label="hifc serve --device $device, $(basename "$model"), $what, KV ${KV_BUDGET:-2GiB}; ${lengths[*]}"
    "$hifc" bench serve --base-url "http://127.0.0.1:$port" --num-prompts "${NUM_PROMPTS:-40}" "${lengths[@]}" \
        --request-rate "${RATES:-1,2,4,8,inf}" --goodput "${goodput[@]}" --tokenizer "$model" --json \
        --csv "$out/serve-sweep-$setting.csv" --plot "$out/serve-sweep-$setting.svg" --label "$label" \
        > "$out/serve-sweep-$setting.json" 2> "$out/serve-sweep-$setting.log"
    rc=$?
    [ "$rc" = 0 ] || status=1
    curl -s "localhost:$port/metrics" > "$out/serve-metrics-$setting.txt"
    kill $pid; wait $pid 2> /dev/null
    echo "serve sweep, $what: bench serve rc=$rc"
    # One line a rate: the columns a reader compares first (the CSV and JSON hold every figure).
    python3 - "$out/serve-sweep-$setting.csv" <<'EOF'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    f = lambda k: float(r[k] or 0)
    print(f"rate {r['request_rate']}: {r['completed']}/{r['requests']} done in {f('duration_s'):.1f} s, "
          f"{f('request_throughput'):.2f} req/s, {f('output_token_throughput'):.0f} out tok/s, "
          f"TTFT p50/p99 {f('ttft_p50_ms'):.0f}/{f('ttft_p99_ms'):.0f} ms, TPOT p50/p99 {f('tpot_p50_ms'):.1f}/{f('tpot_p99_ms'):.1f} ms, "
          f"goodput {f('goodput'):.2f} req/s, cached prompt {100 * f('cached_prompt_fraction'):.0f}%")
EOF
    grep -E '^hifc_(preemptions|swap_outs|swap_ins|recomputed_tokens|prefix_cache_hit_tokens)_total' "$out/serve-metrics-$setting.txt" \
        | tr '\n' ' '; echo
done
exit $status
