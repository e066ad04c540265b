#!/usr/bin/env bash
# Issue 6 in ONE command on the offline multi-GPU host (4 GPUs; 2 work, in more waves), from the repo root,
# once the bundles are there, built where PyPI works (scripts/gpu_bundle.sh; one folder each):
#   OUT=.bundle-trl scripts/gpu_bundle.sh trl bnb smollm2;  OUT=.bundle-unsloth scripts/gpu_bundle.sh unsloth
#   OUT=.bundle-deepspeed scripts/gpu_bundle.sh deepspeed
#
#   bash experiments/scripts/gpu_issue6.sh      # -> $OUT/results.json, table.md, logs.tar.gz, setup.log (4 files)
#
# 1. Installs what is missing (scripts/gpu_setup.sh): /tmp/site (.bundle-trl), /tmp/site-unsloth (.bundle-unsloth,
#    ordered before /tmp/site), /tmp/site-ds (.bundle-deepspeed), each only when its bundle is here; setup output ->
#    $OUT/setup.log.
# 2. benchmarks/gpu_backends.py run: SmolLM2 + 512 generated rows, then in parallel on a GPU pool:
#    GRPO (training/recipes/smollm2-grpo-bench.yaml) with trl bf16 LoRA | trl + bitsandbytes 4-bit | Unsloth
#    4-bit, a checked bf16 merge of each adapter, `evaluate` of the Unsloth adapter, accelerate DDP on 1 and
#    2 GPUs, ZeRO-2 on 2 GPUs; a failed job only skips the jobs that need its output; whatever still runs
#    after $BUDGET seconds (default 450) is stopped; then the summary (step time, generation tokens/s, peak
#    memory, merge figures, 1 vs 2 GPU steps/s and samples/s) -> results.json + table.md.
#
# Settings (environment): OUT (default ./issue6-out), WORK (/tmp/issue6), BUDGET (450 s), STEPS (8), MAXLEN, JOBS, GPUS
# (default: nvidia-smi -L), SITE / UNSLOTH_SITE / DS_SITE. Off the GPU host:
#   DRY=1 GPUS=2 FAIL=trl_4bit bash experiments/scripts/gpu_issue6.sh   # control flow only: every command faked (0.2 s)
#   CPU=1 STEPS=2 bash experiments/scripts/gpu_issue6.sh                # every job for real on the CPU, tiny model (~1.5 min)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/issue6-out}
WORK=${WORK:-/tmp/issue6}
SITE=${SITE:-/tmp/site}
UNSLOTH_SITE=${UNSLOTH_SITE:-/tmp/site-unsloth}
DS_SITE=${DS_SITE:-/tmp/site-ds}
PY=${PY:-python3}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 NCCL_NVLS_ENABLE=0 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
unset PYTHONPATH  # each job gets its own (benchmarks/gpu_backends.py): Unsloth's trl 1.15 must not leak into the rest

args=(run --work "$WORK" --out "$OUT" --site "$SITE" --unsloth-site "$UNSLOTH_SITE" --ds-site "$DS_SITE"
      --budget "${BUDGET:-450}" --steps "${STEPS:-8}")
[ -n "${GPUS:-}" ] && args+=(--gpus "$GPUS")
[ -n "${MODEL:-}" ] && args+=(--model "$MODEL")  # e.g. MODEL=runs/main/sft/checkpoint-500: adapters that move
[ -n "${MAXLEN:-}" ] && args+=(--max-completion-length "$MAXLEN")  # with MODEL=SFT: 1216
[ -n "${JOBS:-}" ] && args+=(--only "$JOBS")  # e.g. JOBS='trl_*,unsloth_4bit,merge_*' (skip DDP/ZeRO)
if [ "${DRY:-0}" = 1 ]; then
  exec "$PY" benchmarks/gpu_backends.py "${args[@]}" --dry-run --fail "${FAIL:-}"
fi
if [ "${CPU:-0}" = 1 ]; then
  exec "$PY" benchmarks/gpu_backends.py "${args[@]}" --cpu
fi

t0=$(date +%s)
{
  nvidia-smi -L || echo "nvidia-smi -L failed"
  setup() {  # setup NAME SITE PROFILE MARKER: install unless SITE/MARKER is there; a failure is logged, not fatal
    if [ -e "$2/$4" ]; then echo "== $1: $2 already there"; return; fi
    if [ ! -d ".bundle-$3" ]; then echo "== $1: .bundle-$3 not carried here: its jobs will be skipped"; return; fi
    echo "== $1"; SITE=$2 bash scripts/gpu_setup.sh ".bundle-$3" || echo "== $1: setup FAILED (rc $?)"
  }
  setup "trl profile + SmolLM2" "$SITE" trl trl-1.16.0.dist-info  # (a /tmp/site of the unsloth profile is redone)
  setup "unsloth add-on" "$UNSLOTH_SITE" unsloth unsloth
  setup "deepspeed add-on" "$DS_SITE" deepspeed deepspeed
} > "$OUT/setup.log" 2>&1
echo "[issue6] setup: $(( $(date +%s) - t0 )) s ($(grep -c FAILED "$OUT/setup.log") failed; see setup.log)"
"$PY" benchmarks/gpu_backends.py "${args[@]}"
rc=$?
echo "[issue6] total $(( $(date +%s) - t0 )) s, exit $rc"
cat "$OUT/table.md" 2>/dev/null | head -20
exit $rc
