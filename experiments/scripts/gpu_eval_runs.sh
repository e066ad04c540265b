#!/usr/bin/env bash
# Re-evaluate finished pipeline runs (experiments/scripts/gpu_pipelines.sh, same warm machine) with other decoding
# settings, one run per GPU: each run's SFT model and GRPO epoch checkpoints on its 100-row test split, and on $EXTRA_EVAL's
# test split when set. For questions the greedy pipeline evaluation does not answer, e.g. whether GRPO improves
# the sampled policy (what it optimises) on held-out prompts:
#
#   EVAL_FLAGS="--temperature 1 --samples 4" SUB=eval-t1 EXTRA_EVAL=data/bigtest \
#     bash experiments/scripts/gpu_eval_runs.sh runs/p1 runs/p2
#
# Results: RUN/$SUB and RUN/$SUB-extra, laid out like RUN/eval (sft, grpo-checkpoint-N), so
# experiments/analysis/pooled_paired.py --all-samples reads them. With $OUT set, $OUT/NAME-$SUB.tar.gz (log,
# summaries, reports, completions). RUN_TIMEOUT=S stops each run after S seconds, leaving what it finished.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: EVAL_FLAGS=\"...\" SUB=NAME bash experiments/scripts/gpu_eval_runs.sh RUN_DIR ..." >&2; exit 2; }
sub=${SUB:-}
[ -n "$sub" ] || { echo "gpu_eval_runs: set SUB to the evaluation folder name inside each run (e.g. eval-t1)" >&2; exit 2; }
case $sub in eval|eval-extra|sft|grpo|data|models|plots|*/*) echo "gpu_eval_runs: SUB=$sub would mix with the pipeline's own folders" >&2; exit 2;; esac
for r in "$@"; do
  [ -f "$r/sft/config.json" ] && [ -f "$r/data/dataset_dict.json" ] || {
    echo "gpu_eval_runs: $r is not a finished pipeline run (no sft/ model or data/)" >&2; exit 2; }
done
source "$(dirname "$0")/gpu_common.sh"
require_extra_eval
threads=${THREADS_PER_RUN:-16}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30

one() {  # run folder, subfolder, flags
  local run=$1 sub=$2 models flags
  read -r -a flags <<< "$3"  # split on spaces, never globbed
  model_args models "$run/sft" "$run/grpo"
  evaluate_test "$run/$sub" "$run/data" "${flags[@]}" "${models[@]}" || return $?
  [ -z "${EXTRA_EVAL:-}" ] || evaluate_extra "$run/$sub-extra" "${flags[@]}" "${models[@]}"
}

pids=() i=0
for run in "$@"; do
  echo "gpu $i: $run -> $run/$sub ${EVAL_FLAGS:-}"
  (export CUDA_VISIBLE_DEVICES=$i OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads EXTRA_EVAL=${EXTRA_EVAL:-}
   timeout "${RUN_TIMEOUT:-0}" bash -c "$(declare -f one model_args evaluate_test evaluate_extra); one $run $sub '${EVAL_FLAGS:-}'") \
    > "$run/$sub.log" 2>&1 &
  pids+=($!); i=$((i + 1))
done
for k in "${!pids[@]}"; do
  run=${*:$((k + 1)):1}
  wait "${pids[$k]}"; echo "$run: exit $?"
  [ -n "${OUT:-}" ] && (cd "$run" && tar czf "$OUT/$(basename "$run")-$sub.tar.gz" --ignore-failed-read "$sub.log" \
    "$sub"/summary.json "$sub"/report.md "$sub"/*/completions.jsonl \
    "$sub-extra"/summary.json "$sub-extra"/report.md "$sub-extra"/*/completions.jsonl 2>/dev/null)
done
exit 0
