#!/usr/bin/env bash
# Run several GPU pipelines side by side, one per GPU, on a multi-GPU host (after scripts/gpu_setup.sh):
# the main run and its ablations in the time of one. Each run is the one-GPU command
#   qwen-scheduler pipeline --preset gpu [--config CONFIG] --output runs/NAME
# with CUDA_VISIBLE_DEVICES set to its own GPU and 16 CPU threads (what a one-GPU H100/H200 host has), so
# its stage times are those of a one-GPU machine. Usage (repo root, PYTHONPATH pointing at the bundle site):
#
#   bash experiments/scripts/gpu_pipelines.sh main abl-rewards=experiments/ablations/gpu-reference-rewards.yaml
#
# NAME alone runs the preset; NAME=CONFIG adds a pipeline config. Logs: runs/NAME/pipeline.log. With $OUT
# set, each run is packed into $OUT/NAME.tar.gz (report, timings, summary, charts, trainer states, sample
# completions, log; no weights) and the exit codes and wall times go to $OUT/runs.json. RUN_TIMEOUT=S stops a
# run after S seconds (exit 124) so that what it produced is still packed. EXTRA_EVAL=DATASET also evaluates each
# run's SFT model and GRPO epoch checkpoints on that dataset's test split once its pipeline has ended (a larger
# held-out set for paired comparisons: runs/NAME/eval-extra, packed too), e.g. one made by
#   qwen-scheduler generate --output data/bigtest --train-size 0 --test-size 400 --seed 7 --holdout-name-sources
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: bash experiments/scripts/gpu_pipelines.sh NAME[=CONFIG] ..." >&2; exit 2; }
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
[ "$gpus" -ge $# ] || { echo "gpu_pipelines: $# runs need $# GPUs, this host has $gpus" >&2; exit 2; }
source "$(dirname "$0")/gpu_common.sh"
require_extra_eval
threads=${THREADS_PER_RUN:-16}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30 NCCL_NVLS_ENABLE=0

extra_eval() {  # run folder: its SFT model and GRPO checkpoints on $EXTRA_EVAL (greedy, static decoder)
  local models
  model_args models "$1/sft" "$1/grpo"
  evaluate_extra "$1/eval-extra" "${models[@]}"
}

names=() pids=() starts=()
i=0
for spec in "$@"; do
  name=${spec%%=*}; config=; [ "$name" != "$spec" ] && config=${spec#*=}
  mkdir -p "runs/$name"
  args=(pipeline --preset gpu --output "runs/$name")
  [ -n "$config" ] && args+=(--config "$config")
  echo "gpu $i: qwen-scheduler ${args[*]}"
  (export CUDA_VISIBLE_DEVICES=$i OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads; t0=$(date +%s)
   timeout "${RUN_TIMEOUT:-0}" python3 -m qwen_scheduler "${args[@]}" > "runs/$name/pipeline.log" 2>&1; rc=$?
   if [ -n "${EXTRA_EVAL:-}" ] && [ -f "runs/$name/sft/config.json" ]; then
     limit=${RUN_TIMEOUT:-0}; [ "$limit" -gt 0 ] || limit=100000; left=$(( limit - ($(date +%s) - t0) ))
     [ "$left" -gt 10 ] && timeout "$left" bash -c "$(declare -f extra_eval model_args evaluate_extra); EXTRA_EVAL=$EXTRA_EVAL extra_eval runs/$name" \
       > "runs/$name/eval-extra.log" 2>&1
   fi
   exit $rc) &
  names+=("$name"); pids+=($!); starts+=("$(date +%s)")
  i=$((i + 1))
done

codes=() walls=()
for k in "${!pids[@]}"; do
  wait "${pids[$k]}"; codes+=($?)
  walls+=($(( $(date +%s) - ${starts[$k]} )))
  echo "${names[$k]}: exit ${codes[$k]} after ${walls[$k]} s"
done

if [ -n "${OUT:-}" ]; then
  json="{"
  for k in "${!names[@]}"; do
    n=${names[$k]}
    (cd "runs/$n" && tar czf "$OUT/$n.tar.gz" --ignore-failed-read pipeline.log report.md timings.json \
       eval/summary.json eval/report.md eval/*.png eval/*/completions.jsonl plots sft/trainer_state.json \
       sft/sft_summary.json sft/checkpoint-*/trainer_state.json grpo/trainer_state.json grpo/run_config.yaml \
       grpo/checkpoint-*/trainer_state.json grpo/warnings.log \
       grpo/completion_samples.jsonl grpo/mining.json eval-extra.log eval-extra/summary.json eval-extra/report.md \
       eval-extra/*/completions.jsonl 2>/dev/null)
    json+="\"$n\": {\"exit\": ${codes[$k]}, \"wall_s\": ${walls[$k]}}"
    [ "$k" -lt $(( ${#names[@]} - 1 )) ] && json+=", "
  done
  echo "$json}" > "$OUT/runs.json"
fi
for c in "${codes[@]}"; do [ "$c" = 0 ] || exit 1; done
