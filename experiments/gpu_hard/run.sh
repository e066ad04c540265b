#!/usr/bin/env bash
# The hard preset (issue 28) on one GPU host: `qwen-scheduler pipeline --preset hard` (or CONFIG=another pipeline
# config), then its report and evaluation files brought back. Runs ON the host once `bash scripts/gpu_setup.sh
# /tmp/bundle-a` has installed the `trl smollm2` bundle (scripts/gpu_bundle.sh trl smollm2). bg|fg STAGE..., status
# and collect DIR as experiments/lib.sh says; each stage is one pipeline, which resumes where a stopped one left off
# (finished stages are kept, GRPO continues from its last checkpoint).
#
#   bash experiments/gpu_hard/run.sh bg pipeline; bash experiments/gpu_hard/run.sh watch 560 DIR
#   bash experiments/gpu_hard/run.sh bg names coverage     # the two arms of hard-session-names / -coverage
#   CONFIG=experiments/ablations/hard-long.yaml bash experiments/gpu_hard/run.sh fg pipeline   # another config
#   bash experiments/gpu_hard/run.sh bg dense_sft turns_sft preset_sft   # SFT-only arms, GRPO later on the best
source "$(dirname "$0")/../lib.sh"
CONFIG=${CONFIG:-}
COLLECT_DIRS=(p hard-dense hard-turns runs/hard-session-names runs/hard-session-coverage)
COLLECT_NAMES=(report.md '*.png' summary.json completions.jsonl metrics.jsonl curriculum.json trainer_state.json
               '*_summary.json' run_config.yaml completion_samples.txt pipeline_config.json timings.json warnings.log)

st_pipeline() {
  if [ -n "$CONFIG" ]; then q pipeline --config "$CONFIG" --output "$W/p"; else q pipeline --preset hard --output "$W/p"; fi
}
# two GRPO arms from one SFT model (experiments/runs/hard/PLAN.md): names trains it, coverage starts from it
NAMES=${NAMES:-$REPO/experiments/ablations/hard-session-names.yaml}
COVERAGE=${COVERAGE:-$REPO/experiments/ablations/hard-session-coverage.yaml}
st_names() { cd "$W" && q pipeline --config "$NAMES" --output runs/hard-session-names; }
st_coverage() { cd "$W" && q pipeline --config "$COVERAGE" --output runs/hard-session-coverage; }

# SFT-only arms: an ablation's SFT model evaluated on the preset's test sets, into $W/NAME (the preset's: $W/p);
# `pipeline --config ... --output $W/NAME` without --stages later adds its GRPO to the same folder
ABL=${ABL:-experiments/ablations}  # where the arms' configs are, relative to the repo copy
SFT_ONLY=generate,model,sft,evaluate,report
arm_sft() { q pipeline --config "$ABL/$1.yaml" --output "$W/$1" --stages "$SFT_ONLY"; }
st_dense_sft() { arm_sft hard-dense; }
st_turns_sft() { arm_sft hard-turns; }
st_preset_sft() { q pipeline --preset hard --output "$W/p" --stages "$SFT_ONLY"; }

main "$@"
