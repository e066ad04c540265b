# Shared by gpu_pipelines.sh, gpu_grpo_extra.sh and gpu_eval_runs.sh (sourced, not run): the evaluations
# they score runs with, so that SFT and GRPO evaluations use the same settings and pair row by row.

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

evaluate_test() {  # OUTPUT_DIR DATASET ARGS...: the GPU pipeline's evaluation (first 100 test rows, static decoder)
  local out=$1 data=$2; shift 2
  python3 -m qwen_scheduler evaluate --dataset "$data" --split test --output "$out" --limit 100 \
    --max-new-tokens 1280 --batch-size 100 --engine static "$@"
}

evaluate_extra() {  # OUTPUT_DIR MODEL_ARGS...: greedy, static decoder, on $EXTRA_EVAL's test split
  # EXTRA_EVAL_BATCH: rows decoded together (default 200). Batched bf16 decoding can change a token with the
  # batch's make-up, so keep it fixed across evaluations that are compared or resumed.
  local out=$1; shift
  python3 -m qwen_scheduler evaluate --dataset "$EXTRA_EVAL" --split test --output "$out" \
    --max-new-tokens 1280 --batch-size "${EXTRA_EVAL_BATCH:-200}" --engine static "$@"
}

reuse_label() {  # FROM_DIR TO_DIR LABEL: start TO_DIR/LABEL from FROM_DIR/LABEL's completions (e.g. an SFT model
  # that several GRPO runs share, scored once): the evaluation then generates only what is missing, and refuses
  # the copy if its settings differ. Nothing is copied when FROM_DIR has no such label or TO_DIR already has it.
  # TO_DIR gets the evaluation folder's marker, so that `evaluate` takes it as its own (scheduler_solver/outputs.py).
  local from=$1/$3 to=$2/$3
  [ -f "$from/settings.json" ] && [ -f "$from/completions.jsonl" ] && [ ! -e "$to" ] || return 0
  mkdir -p "$to" && cp "$from/settings.json" "$from/completions.jsonl" "$to/"
  [ -e "$2/.qwen-scheduler.json" ] || echo '{"command": "evaluate"}' > "$2/.qwen-scheduler.json"
}
