#!/usr/bin/env bash
# The hard preset's one-session run (issue 28) on one GPU host: the pipeline of experiments/ablations/hard-session.yaml
# (SFT on 4-8 events, GRPO on 8-16, the evaluation with the planned paired test set), then its report and evaluation
# files brought back. Runs ON the host once `bash scripts/gpu_setup.sh /tmp/bundle-a` has installed the
# `trl smollm2` bundle (scripts/gpu_bundle.sh trl smollm2). bg|fg STAGE..., status and collect DIR as
# experiments/lib.sh says; the stage is `pipeline`, which resumes where a stopped one left off (finished stages are
# kept, GRPO continues from its last checkpoint).
#
#   bash experiments/gpu_hard/run.sh bg pipeline; bash experiments/gpu_hard/run.sh status
#   CONFIG=other.yaml bash experiments/gpu_hard/run.sh fg pipeline   # another pipeline config, same mechanics
source "$(dirname "$0")/../lib.sh"
CONFIG=${CONFIG:-experiments/ablations/hard-session.yaml}
COLLECT_DIRS=(p)
COLLECT_NAMES=(report.md '*.png' summary.json completions.jsonl metrics.jsonl curriculum.json trainer_state.json
               '*_summary.json' run_config.yaml completion_samples.txt pipeline_config.json timings.json warnings.log)

st_pipeline() { q pipeline --config "$CONFIG" --output "$W/p"; }

main "$@"
