#!/usr/bin/env bash
# vLLM on one GPU host, side by side with the other engines (evaluation and GRPO rollouts). Runs ON the host after
# the bundles are staged (scripts/gpu_bundle.sh trl smollm2 -> /tmp/bundle-a; scripts/gpu_bundle.sh vllm ->
# /tmp/bundle-b). bg|fg STAGE..., status and collect DIR as experiments/lib.sh says.
SITES=/tmp/site-vllm:/tmp/site
source "$(dirname "$0")/../lib.sh"
COLLECT_DIRS=(ev g p)
COLLECT_NAMES=(summary.json report.md completions.jsonl trainer_state.json plan.txt run_summary.json metrics.jsonl)
sft() { if [ -f "$W/p/sft/merged/config.json" ]; then echo "$W/p/sft/merged"; else echo "$W/p/sft"; fi; }
D100=$W/p/data
D2K=$W/d2k
EV="--max-new-tokens 1280 --rules strict"

# waits (up to 15 min) for the vLLM site that `SITE=/tmp/site-vllm bash scripts/gpu_setup.sh` finishes while earlier stages run
st_wait_vllm() { for _ in $(seq 900); do [ -f /tmp/site-vllm/.gpu_setup ] && return 0; sleep 1; done; echo "no /tmp/site-vllm"; return 1; }
st_sft() { q pipeline --preset gpu --output "$W/p" --stages generate,model,sft; }
st_sft_short() { q pipeline --config experiments/gpu_vllm/sft-short.yaml --output "$W/p" --stages generate,model,sft; }
st_data2k() { q generate --output "$D2K" --train-size 0 --test-size 2000 --seed 12 --holdout-name-sources; }
# evaluation: the SFT model, greedy, 100 then 2,000 rows, each engine in its own folder (start-up included; static
# without drafting, lookup_2000 with)
st_ev_static_100() { q evaluate --dataset "$D2K" --limit 100 --model "$(sft)" --label sft --output "$W/ev/static-100" --engine static --draft-tokens 0 --batch-size 100 $EV; }
st_ev_vllm_100() { q evaluate --dataset "$D2K" --limit 100 --model "$(sft)" --label sft --output "$W/ev/vllm-100" --engine vllm $EV; }
st_ev_static_2000() { q evaluate --dataset "$D2K" --model "$(sft)" --label sft --output "$W/ev/static-2000" --engine static --draft-tokens 0 --batch-size 400 $EV; }
st_ev_vllm_2000() { q evaluate --dataset "$D2K" --model "$(sft)" --label sft --output "$W/ev/vllm-2000" --engine vllm --batch-size 2000 $EV; }
# sampled: 100 rows x 4 samples at temperature 1
SMP="--temperature 1.0 --samples 4 --seed 0"
st_ev_static_sampled() { q evaluate --dataset "$D2K" --limit 100 --model "$(sft)" --label sft --output "$W/ev/static-sampled" --engine static --draft-tokens 0 --batch-size 400 $EV $SMP; }
st_ev_vllm_sampled() { q evaluate --dataset "$D2K" --limit 100 --model "$(sft)" --label sft --output "$W/ev/vllm-sampled" --engine vllm --batch-size 400 $EV $SMP; }
# GRPO rounds of 384 completions from the SFT model, one engine each (2 rounds; the first includes warm-up)
R() { echo "train grpo --config experiments/gpu_vllm/rounds.yaml --model_name_or_path $(sft) --dataset $D100"; }
st_grpo_static() { q $(R) --output_dir "$W/g/static" --generation_engine static; }
st_grpo_vllm() { q $(R) --output_dir "$W/g/vllm" --generation_engine trl --use_vllm true --vllm_mode colocate --vllm_gpu_memory_utilization 0.3; }
st_grpo_generate() { q $(R) --output_dir "$W/g/generate" --generation_engine trl --max_steps 1; }
# LoRA: GRPO with vLLM colocate from the SFT model, then its adapter evaluated by vLLM (LoRARequest) and transformers
st_grpo_lora_vllm() { q $(R) --output_dir "$W/g/lora" --generation_engine trl --use_vllm true --vllm_mode colocate --vllm_gpu_memory_utilization 0.3 --use_peft true --lora_r 16 --lora_alpha 32 --learning_rate 1e-4 --save_strategy steps --save_steps 2 --bf16 true --dtype bfloat16; }
# or a LoRA adapter from 30 SFT steps on the SFT model (seconds; no vLLM needed to make it)
st_lora_sft() { q train sft --config training/recipes/smollm2-sft.yaml --model_name_or_path "$(sft)" --dataset "$D100" \
  --use_peft true --lora_r 16 --lora_alpha 32 --learning_rate 1e-4 --max_steps 30 --output_dir "$W/g/lora-sft"; }
ADAPTER() {  # lora_sft's adapter, else GRPO's last LoRA checkpoint
  local a; a=$(ls "$W"/g/lora-sft/adapter_config.json "$W"/g/lora-sft/checkpoint-*/adapter_config.json 2>/dev/null | head -1)
  if [ -n "$a" ]; then dirname "$a"; else ls -d "$W"/g/lora/checkpoint-* | sort -V | tail -1; fi; }
st_ev_lora_vllm() { q evaluate --dataset "$D2K" --limit 100 --model "$(ADAPTER)" --label lora --output "$W/ev/lora-vllm" --engine vllm $EV; }
st_ev_lora_tf() { q evaluate --dataset "$D2K" --limit 100 --model "$(ADAPTER)" --label lora --output "$W/ev/lora-tf" --engine transformers --batch-size 100 $EV; }
st_ev_lora_vllm_2000() { q evaluate --dataset "$D2K" --model "$(ADAPTER)" --label lora --output "$W/ev/lora-vllm-2000" --engine vllm --batch-size 2000 $EV; }

# the preset's GRPO (the pipeline's grpo stage) and both models on a test split of held-out real-world names
st_grpo_preset() { q pipeline --preset gpu --output "$W/p" --stages grpo; }
st_ev_realworld() {
  q generate --output "$W/drw" --train-size 0 --test-size 100 --seed 13 --test-name-sources realworld &&
  q evaluate --dataset "$W/drw" --model "$(sft)" oracle greedy --label sft oracle greedy --checkpoints "$W/p/grpo" \
    --output "$W/ev/realworld" --engine static --batch-size 100 $EV; }

# the short form (a host held for minutes only): the base model instead of the SFT model, the same comparisons
st_base() { q model prepare --output "$W/base" && q generate --output "$W/d512" --train-size 512 --test-size 100 --seed 12 --holdout-name-sources; }
st_ev_static_base() { q evaluate --dataset "$W/d512" --model "$W/base" --label base --output "$W/ev/static-base" --engine static --draft-tokens 0 --batch-size 100 $EV; }
st_ev_vllm_base() { q evaluate --dataset "$W/d512" --model "$W/base" --label base --output "$W/ev/vllm-base" --engine vllm $EV; }
st_grpo_vllm_base() { q train grpo --config experiments/gpu_vllm/rounds.yaml --model_name_or_path "$W/base" --dataset "$W/d512" --output_dir "$W/g/vllm-base" --max_steps 1 --generation_engine trl --use_vllm true --vllm_mode colocate --vllm_gpu_memory_utilization 0.3; }

# two GPUs (TRL server mode): `trl vllm-serve` on GPU 0, training on GPU 1; the same rounds as grpo_vllm (colocate)
serve() {  # serve MODEL: start the server in the background, wait until it answers, print its pid
  CUDA_VISIBLE_DEVICES=0 PYTHONPATH=$REPO:$SITES python3 -m trl.cli.main vllm-serve --model "$1" --gpu_memory_utilization 0.9 \
    --port 8000 > "$W/logs/vllm-serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=2)" 2>/dev/null && break; sleep 1; done
  echo $pid
}
st_grpo_server() {
  local pid; pid=$(serve "$(sft)")
  CUDA_VISIBLE_DEVICES=1 q $(R) --output_dir "$W/g/server" --generation_engine trl --use_vllm true --vllm_mode server \
    --vllm_server_host 127.0.0.1 --vllm_server_port 8000; local rc=$?
  kill $pid; wait $pid 2>/dev/null; return $rc
}

# the static decoder alone: a `gpu` round (384 rows stopping at 700-1,000 tokens, cap 1,216) with finished rows kept,
# dropped at a quarter (the default) and at half, side by side, twice (benchmarks/static_compaction.py)
st_compaction() { PYTHONPATH=$REPO:$SITES python3 benchmarks/static_compaction.py --short 700 1000 --cap 1216 \
  --variants 0 0.25 0.5 --repeat 2; }

# prompt-lookup speculation in the static decoder: a round of 48 training prompts x 8 at T 1 from the SFT model with
# 0 (plain), 2, 4 and 6 draft tokens per step, twice (benchmarks/lookup_round.py); then GRPO rounds with 4 (as
# grpo_static, one flag more)
st_lookup() { PYTHONPATH=$REPO:$SITES python3 benchmarks/lookup_round.py --model "$(sft)" --dataset "$D100" \
  --split train --variants 0 2 4 6 --repeat 2; }
# the step's choice of tokens compiled (compile_choice) beside it uncompiled: first the cost of a pass (a random
# model, no bundle needed), then the trained model's round, plain and with 1-3 draft tokens, twice
st_choice_profile() { PYTHONPATH=$REPO python3 benchmarks/profile_static_decode.py --choice-only \
    --variants fused,fused+choice,lookup2,lookup2+choice &&
  PYTHONPATH=$REPO python3 benchmarks/profile_static_decode.py --no-profile \
    --variants fused,fused+choice,lookup2,lookup2+choice; }
st_choice() { PYTHONPATH=$REPO:$SITES python3 benchmarks/lookup_round.py --model "$(sft)" --dataset "$D100" \
  --split train --variants 0 0+choice 1+choice 2 2+choice 3+choice --repeat 2; }
st_grpo_lookup() { q $(R) --output_dir "$W/g/lookup" --generation_engine static --draft_tokens 4; }
# ... and the 2,000-row greedy evaluation with 4 (as ev_static_2000)
st_ev_lookup_2000() { q evaluate --dataset "$D2K" --model "$(sft)" --label sft --output "$W/ev/lookup-2000" --engine static --batch-size 400 --draft-tokens 4 $EV; }

main "$@"
