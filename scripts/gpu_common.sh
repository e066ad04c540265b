# Shared by scripts/gpu_pipelines.sh and scripts/gpu_grpo_extra.sh (sourced, not run): the held-out check both
# score runs on, so that their SFT and GRPO evaluations use the same settings and pair row by row.

require_extra_eval() {  # $EXTRA_EVAL, when set, must be a dataset folder: say so before any GPU work starts
  [ -z "${EXTRA_EVAL:-}" ] || [ -f "$EXTRA_EVAL/dataset_dict.json" ] || {
    echo "${0##*/}: EXTRA_EVAL=$EXTRA_EVAL is not a dataset folder (make it first: qwen-scheduler generate --output $EXTRA_EVAL ...)" >&2
    exit 2; }
}

model_args() {  # ARRAY SFT_DIR GRPO_DIR: fill ARRAY with --model/--label pairs: sft, then checkpoints in step order
  local -n _args=$1
  _args=(--model "$2" --label sft)
  local c  # sorted on the folder names alone: a hyphen elsewhere in the path would shift sort's field
  for c in $(cd "$3" 2>/dev/null && ls -d checkpoint-* 2>/dev/null | sort -t- -k2 -n); do
    _args+=(--model "$3/$c" --label "grpo-$c")
  done
}

evaluate_extra() {  # OUTPUT_DIR MODEL_ARGS...: greedy, static decoder, on $EXTRA_EVAL's test split
  local out=$1; shift
  python3 -m qwen_scheduler evaluate --dataset "$EXTRA_EVAL" --split test --output "$out" \
    --max-new-tokens 1280 --batch-size 200 --backend transformers-static "$@"
}
