#!/usr/bin/env bash
# Device check (issue 13), at most 8 minutes, no network:
#   1. the paper profile end to end on the stand-ins (`sharedrep paper-dryrun`): on a GPU with the profile's
#      bf16, and GRPO generating with vLLM when vLLM is installed (else transformers, with one line saying so)
#   2. `sharedrep shapes --profile paper`: TinyLlama-1.1B and gpt2-large at real dimensions, random weights,
#      time and peak memory of one step of each stage
# Everything it writes goes under $OUT (default runs/device-check): the dry run's run directory, the shapes
# JSON and table, the logs. Without a CUDA GPU it says so and runs both on the CPU.
#
#   bash scripts/device_check.sh            # run
#   bash scripts/device_check.sh --dry-run  # print the commands only
# $PYTHON picks the interpreter (default .venv/bin/python, else python3); $DEVICE_CHECK_DEVICE (cuda or cpu)
# skips the GPU probe.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
case "${1:-}" in
  --dry-run) DRY_RUN=1 ;;
  "") ;;
  *) echo "usage: bash scripts/device_check.sh [--dry-run]" >&2; exit 2 ;;
esac

if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3
fi
DEST=${OUT:-runs/device-check}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

DEVICE=${DEVICE_CHECK_DEVICE:-}
if [[ -z "$DEVICE" ]]; then
  if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    DEVICE=cuda
  else
    DEVICE=cpu
  fi
fi
if [[ "$DEVICE" == cpu ]]; then
  echo "[device-check] no CUDA GPU visible: falling back to the CPU (no bf16, no vLLM; shapes measures what fits)"
  SHAPES_SECONDS=60
else
  echo "[device-check] CUDA GPU visible: bf16 on, vLLM for GRPO if installed"
  SHAPES_SECONDS=120
fi

COMMANDS=(
  "timeout 330 $PY -m sharedrep_utils paper-dryrun --run-dir $DEST/paper-dryrun --set device=$DEVICE"
  "timeout 140 $PY -m sharedrep_utils shapes --profile paper --device $DEVICE --max-seconds $SHAPES_SECONDS --out $DEST/shapes-$DEVICE.json"
)
LOGS=(paper-dryrun.log "shapes-$DEVICE.log")

if [[ $DRY_RUN == 1 ]]; then
  for command in "${COMMANDS[@]}"; do echo "$command"; done
  exit 0
fi

mkdir -p "$DEST"
{ command -v nvidia-smi >/dev/null && nvidia-smi; "$PY" -m pip list 2>/dev/null | grep -iE "^(torch|transformers|trl|accelerate|vllm) " || true; } \
  > "$DEST/environment.txt" 2>&1 || true
status=0
for i in "${!COMMANDS[@]}"; do
  echo "[device-check] ${COMMANDS[$i]}"
  start=$(date +%s)
  if ! ${COMMANDS[$i]} > "$DEST/${LOGS[$i]}" 2>&1; then
    status=1
    echo "[device-check] FAILED (see $DEST/${LOGS[$i]}):"
    tail -n 15 "$DEST/${LOGS[$i]}"
  fi
  echo "[device-check] $(( $(date +%s) - start ))s"
done
[[ -f "$DEST/shapes-$DEVICE.md" ]] && cat "$DEST/shapes-$DEVICE.md"
grep -h "generation_backend" "$DEST"/paper-dryrun/seed*/prop*/policy/*/manifest.json 2>/dev/null | sort | uniq -c || true
exit $status
