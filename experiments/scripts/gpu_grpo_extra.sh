#!/usr/bin/env bash
# GRPO-only experiments on a multi-GPU host, one per GPU, from the SFT models of finished pipeline runs
# (experiments/scripts/gpu_pipelines.sh, same warm machine): each runs a GRPO recipe with its own extra flags
# ($GRPO_RECIPE; default the preset's training/recipes/smollm2-grpo.yaml; runs 1-15 ran smollm2-grpo-shaped.yaml),
# then evaluates its SFT model and every epoch checkpoint on that run's 100-row test split (and on $EXTRA_EVAL's test
# split when set), greedy with the static decoder as the pipeline does. For GRPO settings that do not fit inside
# the 10-minute pipeline (more rounds). Usage:
#
#   SFT_RUN=runs/a,runs/b EXTRA_EVAL=data/bigtest \
#     bash experiments/scripts/gpu_grpo_extra.sh l1="--num_train_epochs 4" l2="--num_train_epochs 4"
#
# FLAGS are split on spaces (never globbed): write a YAML/JSON value as one word, e.g. --rewards
# '["strict_format",{"name":"optimal","points":70}]' (JSON without spaces; no single quotes inside FLAGS).
# SFT_RUN is one pipeline folder for every spec, or a comma list with one folder per spec (spec i starts from
# folder i). Results: runs/NAME/{grpo,eval,eval-extra}, laid out like a pipeline run (eval/sft, eval/grpo-checkpoint-N)
# so experiments/analysis/pooled_paired.py reads them. With $OUT set, $OUT/NAME.tar.gz (log, trainer states, eval
# summaries and completions; no weights). RUN_TIMEOUT=S stops each run after S seconds, leaving what it finished.
# More runs than GPUs share them: run i goes on GPU i mod (GPUs on the host), e.g. four runs on two H200s (141 GiB
# each; a run peaks at ~59 GiB, so two fit; not on an 80 GiB H100). Shared GPUs make every stage slower, so pass a
# larger --time_budget_s with such runs (the preset's 230 s guard would drop a late generation round).
# An SFT model already scored on $EXTRA_EVAL by its pipeline (SFT_RUN/eval-extra/sft, same settings) is not scored
# again: its completions are copied into each run's eval-extra/sft and only what is missing is generated.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: SFT_RUN=runs/NAME[,runs/NAME2...] bash experiments/scripts/gpu_grpo_extra.sh NAME=\"FLAGS\" ..." >&2; exit 2; }
IFS=, read -r -a sft_runs <<< "${SFT_RUN:?set SFT_RUN to finished pipeline folders (runs/NAME[,runs/NAME2...])}"
[ "${#sft_runs[@]}" = 1 ] || [ "${#sft_runs[@]}" = $# ] || {
  echo "gpu_grpo_extra: SFT_RUN names ${#sft_runs[@]} folders for $# runs (give one, or one per run)" >&2; exit 2; }
export GRPO_RECIPE=${GRPO_RECIPE:-training/recipes/smollm2-grpo.yaml}
[ -f "$GRPO_RECIPE" ] || { echo "gpu_grpo_extra: GRPO_RECIPE=$GRPO_RECIPE is not a file" >&2; exit 2; }
for r in "${sft_runs[@]}"; do
  [ -f "$r/sft/config.json" ] || { echo "gpu_grpo_extra: no SFT model in $r/sft" >&2; exit 2; }
done
source "$(dirname "$0")/gpu_common.sh"
require_extra_eval
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
[ "$gpus" -ge 1 ] || gpus=1
threads=${THREADS_PER_RUN:-16}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30

one() {  # name, SFT run folder, flags: GRPO, then its SFT model and checkpoints on the test split(s)
  local name=$1 sft_run=$2 out=runs/$1 flags
  read -r -a flags <<< "$3"  # split on spaces, never globbed (a JSON value like [...] is a glob pattern)
  python3 -m qwen_scheduler train grpo --config "$GRPO_RECIPE" \
    --model_name_or_path "$sft_run/sft" --dataset "$sft_run/data" --output_dir "$out/grpo" "${flags[@]}" || return $?
  local models
  model_args models "$sft_run/sft" "$out/grpo"
  evaluate_test "$out/eval" "$sft_run/data" "${models[@]}" || return $?
  [ -z "${EXTRA_EVAL:-}" ] || { reuse_label "$sft_run/eval-extra" "$out/eval-extra" sft
    evaluate_extra "$out/eval-extra" "${models[@]}"; }
}

names=() pids=()
i=0
for spec in "$@"; do
  name=${spec%%=*}; flags=; [ "$name" != "$spec" ] && flags=${spec#*=}
  sft_run=${sft_runs[0]}; [ "${#sft_runs[@]}" = 1 ] || sft_run=${sft_runs[$i]}
  mkdir -p "runs/$name"
  echo "gpu $(( i % gpus )): $name: GRPO from $sft_run/sft $flags"
  (export CUDA_VISIBLE_DEVICES=$(( i % gpus )) OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads EXTRA_EVAL=${EXTRA_EVAL:-}
   timeout "${RUN_TIMEOUT:-0}" bash -c "$(declare -f one model_args evaluate_test evaluate_extra reuse_label); one $name $sft_run '$flags'") \
    > "runs/$name/run.log" 2>&1 &
  names+=("$name"); pids+=($!)
  i=$((i + 1))
done
for k in "${!pids[@]}"; do
  wait "${pids[$k]}"; echo "${names[$k]}: exit $?"
  [ -n "${OUT:-}" ] && (cd "runs/${names[$k]}" && tar czf "$OUT/${names[$k]}.tar.gz" --ignore-failed-read run.log \
    grpo/trainer_state.json grpo/checkpoint-*/trainer_state.json grpo/warnings.log eval/summary.json eval/report.md \
    eval/*/completions.jsonl eval-extra/summary.json eval-extra/report.md eval-extra/*/completions.jsonl 2>/dev/null)
done
