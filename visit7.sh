#!/usr/bin/env bash
# Visit 7: logits of the synthetic tiny and 1B models against PyTorch/transformers (7a5930b's binary).
set -u
export OUT HIFC_KERNEL_CACHE=/tmp/hifc-kc
bash .device/unpack.sh >/dev/null
work=/var/tmp/hifc; mkdir -p "$work"
.device/hifc check gpu --models tiny,1b --keep-models --work-dir "$work" > "$OUT/check.txt" 2>&1
echo "check gpu rc=$?"; grep -E "FAIL|passed|logits|greedy" "$OUT/check.txt" | tail -12
ls "$work"
python3 bench/cuda/torch_logits.py $(ls -d "$work"/synth-tiny* "$work"/synth-1b* 2>/dev/null | head -2) 2>&1 | grep -v Warning | tail -12
