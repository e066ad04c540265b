#!/usr/bin/env bash
# GRPO-only experiments on a multi-GPU host, one per GPU, from the SFT model of a finished pipeline run
# (scripts/gpu_pipelines.sh, same warm machine): each runs the GPU GRPO recipe with its own extra flags, then
# evaluates every epoch checkpoint on that run's test split. For GRPO settings that do not fit inside the
# 10-minute pipeline (more rounds), compared with the SFT model's evaluation of the same rows. Usage:
#
#   SFT_RUN=runs/noise03 bash scripts/gpu_grpo_extra.sh g1="--time_budget_s 340" g2="--name_noise 0.5 --learning_rate 1e-5"
#
# Results: runs/NAME/{grpo,eval}; with $OUT set, $OUT/NAME.tar.gz (log, trainer states, eval summary and
# completions; no weights). RUN_TIMEOUT=S stops each run after S seconds, leaving what it finished.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: SFT_RUN=runs/NAME bash scripts/gpu_grpo_extra.sh NAME=\"FLAGS\" ..." >&2; exit 2; }
sft_run=${SFT_RUN:?set SFT_RUN to a finished pipeline folder (runs/NAME)}
[ -f "$sft_run/sft/config.json" ] || { echo "gpu_grpo_extra: no SFT model in $sft_run/sft" >&2; exit 2; }
threads=${THREADS_PER_RUN:-16}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30

one() {  # name, flags: GRPO then evaluation of its checkpoints
  local name=$1 flags=$2 out=runs/$1
  # shellcheck disable=SC2086
  python3 -m qwen_scheduler train grpo --config training/recipes/smollm2-grpo.yaml \
    --model_name_or_path "$sft_run/sft" --dataset "$sft_run/data" --output_dir "$out/grpo" $flags || return $?
  local models=()
  for c in $(ls -d "$out"/grpo/checkpoint-* | sort -t- -k2 -n); do models+=(--model "$c" --label "grpo-${c##*/}"); done
  python3 -m qwen_scheduler evaluate --dataset "$sft_run/data" --split test --output "$out/eval" \
    --max-new-tokens 1280 --batch-size 100 --limit 100 "${models[@]}"
}

names=() pids=()
i=0
for spec in "$@"; do
  name=${spec%%=*}; flags=; [ "$name" != "$spec" ] && flags=${spec#*=}
  mkdir -p "runs/$name"
  echo "gpu $i: $name: GRPO from $sft_run/sft $flags"
  (export CUDA_VISIBLE_DEVICES=$i OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
   timeout "${RUN_TIMEOUT:-0}" bash -c "$(declare -f one); sft_run=$sft_run; one $name '$flags'") \
    > "runs/$name/run.log" 2>&1 &
  names+=("$name"); pids+=($!)
  i=$((i + 1))
done
for k in "${!pids[@]}"; do
  wait "${pids[$k]}"; echo "${names[$k]}: exit $?"
  [ -n "${OUT:-}" ] && (cd "runs/${names[$k]}" && tar czf "$OUT/${names[$k]}.tar.gz" --ignore-failed-read run.log \
    grpo/trainer_state.json grpo/checkpoint-*/trainer_state.json eval/summary.json eval/*/completions.jsonl 2>/dev/null)
done
