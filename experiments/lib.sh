# The host side of the GPU experiment drivers (experiments/*/run.sh), sourced by each: run named stages once each,
# in the background or the foreground, and bring back their results. A driver defines st_NAME functions and
# COLLECT_DIRS (folders under $W) and COLLECT_NAMES (file names in them, 3 levels deep at most, globs allowed) to
# bring back, then ends with `main "$@"`:
#
#   bash experiments/NAME/run.sh bg STAGE...   # copy the repo to $REPO, run the stages there, detached
#   bash experiments/NAME/run.sh fg STAGE...   # the same in the foreground, from $REPO
#   bash experiments/NAME/run.sh status        # results so far and the running stage's last lines
#   bash experiments/NAME/run.sh collect DIR   # results, logs and the collected files into DIR/results.tar.gz
#   bash experiments/NAME/run.sh watch S DIR   # wait up to S seconds for a bg run to end, collecting into DIR every
#                                              # minute (a call cut short still brings back the latest), then status
#
# Each stage runs once (a finished one is skipped; a stopped one runs again and resumes as its command does), logs to
# $W/logs/STAGE.log and appends {stage, rc, wall_s, peak_mib} to $W/results.jsonl (peak_mib: nvidia-smi's used
# memory, all processes; null without nvidia-smi).
set -uo pipefail
W=${W:-/tmp/w}
REPO=${REPO:-/tmp/repo}
SITES=${SITES:-/tmp/site}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export VLLM_NO_USAGE_STATS=1 NCCL_NVLS_ENABLE=0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)  # the checkout the driver was started from
DRIVER=$(realpath --relative-to="$ROOT" "$0")          # experiments/NAME/run.sh

q() { PYTHONPATH=$REPO:$SITES python3 -m qwen_scheduler "$@"; }

stage() {  # stage NAME: run the function st_NAME once
  local name=$1 t0 t1 rc peak smi=""
  declare -F "st_$name" > /dev/null || { echo "== $name: no such stage"; return 2; }
  [ -f "$W/done/$name" ] && { echo "== $name: done before"; return 0; }
  mkdir -p "$W/logs" "$W/done"
  echo "== $name: start $(date +%T)"
  : > "$W/logs/$name.mem"
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$W/logs/$name.mem" 2>/dev/null &
    smi=$!
  fi
  t0=$(date +%s.%N)
  ( cd "$REPO" && "st_$name" ) > "$W/logs/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  [ -n "$smi" ] && { kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null; }
  peak=$(sort -n "$W/logs/$name.mem" | tail -1)
  printf '{"stage": "%s", "rc": %d, "wall_s": %.1f, "peak_mib": %s}\n' "$name" "$rc" "$(awk "BEGIN {print $t1 - $t0}")" \
    "${peak:-null}" >> "$W/results.jsonl"
  [ "$rc" = 0 ] && touch "$W/done/$name"
  echo "== $name: rc=$rc $(tail -1 "$W/results.jsonl")"
  return "$rc"
}

main() {
  case "${1:-}" in
    bg) shift
        local d
        for d in "$REPO" "$REPO.new"; do  # the copy is replaced only where an earlier bg made it
          if [ -e "$d" ] && [ ! -f "$d/.run_copy" ]; then
            echo "$DRIVER: $d exists and is not a copy made by bg: set REPO to a new folder" >&2; return 2
          fi
        done
        rm -rf "$REPO.new"; mkdir -p "$W" "$REPO.new"
        tar -C "$ROOT" --exclude='./.bundle*' --exclude='./.venv' --exclude='./.git' -cf - . | tar -xf - -C "$REPO.new"
        touch "$REPO.new/.run_copy"
        rm -rf "$REPO"; mv "$REPO.new" "$REPO"
        setsid nohup bash "$REPO/$DRIVER" fg "$@" > "$W/driver.log" 2>&1 < /dev/null &
        echo "started in the background: $* (log $W/driver.log)" ;;
    fg) shift; local s failed=0
        for s in "$@"; do stage "$s" || failed=1; done  # a failed stage does not stop the others
        echo "== all done: $*"; return "$failed" ;;
    status) cat "$W/results.jsonl" 2>/dev/null; tail -3 "$W/driver.log" 2>/dev/null
            local cur; cur=$(ls -t "$W"/logs/*.log 2>/dev/null | head -1)
            [ -n "$cur" ] && { echo "-- $cur"; tail -4 "$cur" | cut -c1-300; } ;;
    collect) local out=${2:?collect DIR}; mkdir -p "$out"
             if [ -e "$out/results.tar.gz" ] && [ ! -f "$out/.collected" ]; then  # replaces only its own archive
               echo "$DRIVER: $out/results.tar.gz exists and was not written by collect: choose another DIR" >&2
               return 2
             fi
             local n names=()
             for n in "${COLLECT_NAMES[@]}"; do names+=(-name "$n" -o); done
             (cd "$W" && tar czf "$out/results.tar.gz.tmp" $(ls -d results.jsonl logs driver.log 2>/dev/null) \
                $(find "${COLLECT_DIRS[@]}" -maxdepth 3 \( "${names[@]}" -false \) 2>/dev/null)) &&
               touch "$out/.collected" && mv "$out/results.tar.gz.tmp" "$out/results.tar.gz"
             ls -la "$out" ;;
    watch) local secs=${2:?watch SECONDS DIR} dir=${3:?watch SECONDS DIR} end last=0
           end=$(( $(date +%s) + secs ))
           while [ "$(date +%s)" -lt "$end" ] && ! grep -q '^== all done' "$W/driver.log" 2>/dev/null; do
             [ $(( $(date +%s) - last )) -ge 60 ] && { main collect "$dir" > /dev/null; last=$(date +%s); }
             sleep 5
           done
           main collect "$dir" > /dev/null; main status ;;
    *) echo "usage: $DRIVER bg|fg STAGE... | status | collect DIR | watch SECONDS DIR" >&2; return 2 ;;
  esac
}
