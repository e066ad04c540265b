"""Model arguments and loading for training (GRPO and SFT), on two backends.

* ``trl``: ``transformers`` + PEFT. A LoRA config is returned for the trainer to apply
  (``peft_config=``); with CUDA and ``load_in_4bit`` the base loads in 4-bit NF4 through
  bitsandbytes (double quantisation, bf16 compute, i.e. QLoRA), otherwise in bf16 on a GPU
  and float32 on a CPU. Runs anywhere, including tiny models on a laptop CPU.
* ``unsloth`` (CUDA only): ``FastLanguageModel.from_pretrained`` (+ vLLM ``fast_inference``
  when vLLM imports) and ``FastLanguageModel.get_peft_model``; the LoRA is already on the model.

``resolve_backend("auto")`` picks unsloth when CUDA is present and ``import unsloth`` works,
else trl, and says why. It must run before ``trl``/``transformers``/``peft`` are imported,
because Unsloth patches them on import.

If ``model_name_or_path`` is a LoRA adapter folder (e.g. an SFT cold start), its base is
loaded (``base_model`` or the adapter's own record) and the adapter keeps training.

    >>> ModelArguments(model_name_or_path="m", lora_target_modules=["q_proj"]).effective_max_lora_rank
    16
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from scheduler_solver.errors import UserError

BACKENDS = ("auto", "unsloth", "trl")
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class ModelArguments:
    """Which model to train and how to wrap it (LoRA / QLoRA)."""

    model_name_or_path: Optional[str] = field(default=None, metadata={"help": "Hub id, model folder or LoRA adapter folder."})
    base_model: Optional[str] = field(default=None, metadata={"help": "Base model of an adapter (default: the adapter's own record)."})
    dtype: str = field(default="auto", metadata={"help": "auto (bf16 on GPU, float32 on CPU), bfloat16, float16, float32."})
    load_in_4bit: bool = field(default=False, metadata={"help": "4-bit base weights (QLoRA); CUDA only, ignored with a note on CPU."})
    use_peft: bool = field(default=True, metadata={"help": "Train a LoRA adapter (false: full fine-tuning, trl backend only)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(default_factory=lambda: list(ALL_LINEAR), metadata={"help": "Modules that get LoRA."})
    lora_random_state: int = field(default=3407, metadata={"help": "Seed for the LoRA initialisation (unsloth)."})
    max_lora_rank: Optional[int] = field(default=None, metadata={"help": "Largest LoRA rank vLLM must serve (unsloth; default lora_r)."})
    gpu_memory_utilization: float = field(default=0.6, metadata={"help": "Share of GPU memory for vLLM (unsloth fast_inference)."})
    fast_inference: Optional[bool] = field(default=None, metadata={"help": "Unsloth vLLM generation (default: when vllm imports)."})
    max_seq_length: int = field(default=2048, metadata={"help": "Longest prompt + completion, in tokens."})
    attn_implementation: Optional[str] = field(default=None, metadata={"help": "e.g. sdpa, flash_attention_2 (trl backend)."})
    build_tiny: bool = field(default=False, metadata={"help": "Build a tiny random model at model_name_or_path if it is missing (tests)."})

    def __post_init__(self):
        if isinstance(self.lora_target_modules, str):
            self.lora_target_modules = [m.strip() for m in self.lora_target_modules.split(",") if m.strip()]
        if self.lora_r < 1 or self.lora_alpha < 1:
            raise ValueError(f"lora_r and lora_alpha must be positive (got {self.lora_r}, {self.lora_alpha})")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1) (got {self.lora_dropout})")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1] (got {self.gpu_memory_utilization})")
        if self.dtype not in ("auto", "bfloat16", "bf16", "float16", "fp16", "float32", "fp32"):
            raise ValueError(f"unknown dtype {self.dtype!r} (auto, bfloat16, float16, float32)")

    @property
    def effective_max_lora_rank(self) -> int:
        return self.max_lora_rank or self.lora_r


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _say(msg: str) -> None:
    print(msg, flush=True)


def resolve_backend(name: str) -> str:
    """``"unsloth"`` or ``"trl"`` for ``auto|unsloth|trl``; imports Unsloth when it is chosen."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    if name == "trl":
        _say("backend: trl (requested)")
        return "trl"
    cuda = _cuda()
    installed = importlib.util.find_spec("unsloth") is not None
    if name == "unsloth":
        if not cuda:
            raise UserError("backend 'unsloth' needs a CUDA GPU and none is visible; use --backend trl")
        if not installed:
            raise UserError("backend 'unsloth' is not installed: pip install 'unsloth>=2026.10.9' (or use --backend trl)")
    elif not cuda:
        _say("backend: trl (auto: no CUDA GPU, so not unsloth)")
        return "trl"
    elif not installed:
        _say("backend: trl (auto: unsloth is not installed)")
        return "trl"
    early = [m for m in ("transformers", "trl", "peft") if m in sys.modules]
    if early:
        _say(f"warning: {', '.join(early)} imported before unsloth; Unsloth's patches may be incomplete")
    try:
        import unsloth  # noqa: F401  (patches transformers/trl/peft on import)
    except Exception as e:  # Unsloth raises many kinds (NotImplementedError, ImportError, RuntimeError)
        line = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        if name == "unsloth":
            raise UserError(f"import unsloth failed: {line}")
        _say(f"backend: trl (auto: import unsloth failed: {line})")
        return "trl"
    _say(f"backend: unsloth ({'requested' if name == 'unsloth' else 'auto: CUDA and unsloth available'})")
    return "unsloth"


def vllm_importable() -> bool:
    return importlib.util.find_spec("vllm") is not None


def unsloth_fast_inference(model_args: ModelArguments) -> bool:
    """Whether the unsloth backend loads the model with a vLLM engine (``fast_inference``; default: when vLLM
    imports)."""
    return vllm_importable() if model_args.fast_inference is None else bool(model_args.fast_inference)


def ensure_model(model_args: ModelArguments, dry_run: bool = False) -> str:
    """The model path to load, building the tiny test model first when asked to (for a dry run, in a temporary
    folder removed at exit: a dry run writes nothing). Local paths become absolute, so that the adapter's
    ``base_model_name_or_path`` still finds its base from any folder."""
    from evaluation.models import _check_local_or_hub, build_tiny_model, local_path

    spec = model_args.model_name_or_path
    if not spec:
        raise UserError("no model: set model_name_or_path in the recipe or pass --model_name_or_path")
    if model_args.build_tiny and not (Path(spec) / "config.json").exists():
        if dry_run:
            import atexit
            import shutil
            import tempfile

            tmp = tempfile.mkdtemp(prefix="qwen-scheduler-dry-run-")
            atexit.register(shutil.rmtree, tmp, True)
            _say(f"dry run: a tiny random model would be built at {spec}; the plan uses a temporary one")
            return str(build_tiny_model(str(Path(tmp) / "model")))
        _say(f"building a tiny random model at {spec}")
        build_tiny_model(spec)
    model_args.model_name_or_path = spec = local_path(spec)
    model_args.base_model = local_path(model_args.base_model)
    _check_local_or_hub(spec)
    return spec


def tokenizer_source(model_args: ModelArguments, spec: str) -> str:
    """Where the tokenizer lives: the folder itself, else (for an adapter without one) its base."""
    from evaluation.models import adapter_base, is_adapter

    if (Path(spec) / "tokenizer_config.json").exists() or not is_adapter(spec):
        return spec
    return model_args.base_model or adapter_base(spec)


def load_training_tokenizer(model_args: ModelArguments, dry_run: bool = False):
    """The tokenizer alone (left padding, a pad token), e.g. to prepare data before loading the model."""
    from evaluation.models import load_tokenizer

    return load_tokenizer(tokenizer_source(model_args, ensure_model(model_args, dry_run)), padding_side="left")


def _torch_dtype(model_args: ModelArguments, cuda: bool):
    from evaluation.models import resolve_dtype

    return resolve_dtype(model_args.dtype, "cuda" if cuda else "cpu")


def lora_config(model_args: ModelArguments):
    from peft import LoraConfig

    return LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                      target_modules=list(model_args.lora_target_modules), bias="none", task_type="CAUSAL_LM")


def _load_trl(model_args: ModelArguments, spec: str):
    import os

    import torch

    from evaluation.models import adapter_base, is_adapter, load_adapter, load_causal_lm, load_tokenizer

    cuda = torch.cuda.is_available()
    adapter = is_adapter(spec)
    base = (model_args.base_model or adapter_base(spec)) if adapter else spec
    kwargs = {"dtype": _torch_dtype(model_args, cuda)}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    if model_args.load_in_4bit and not cuda:
        _say("note: load_in_4bit needs CUDA (bitsandbytes); loading full precision on the CPU instead")
    elif model_args.load_in_4bit:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UserError("load_in_4bit needs bitsandbytes: pip install 'bitsandbytes>=0.45.5'")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}  # one full copy per process (DDP)
        kwargs["dtype"] = torch.bfloat16
    tokenizer = load_tokenizer(tokenizer_source(model_args, spec), padding_side="left")
    model = load_causal_lm(base, f"base model of adapter {spec}" if adapter else "model", **kwargs)
    if adapter:
        _say(f"continuing to train the adapter {spec} on {base}")
        return load_adapter(model, spec, is_trainable=True), tokenizer, None
    return model, tokenizer, (lora_config(model_args) if model_args.use_peft else None)


def _load_unsloth(model_args: ModelArguments, spec: str):
    from unsloth import FastLanguageModel  # resolve_backend imported unsloth first

    from evaluation.models import is_adapter

    if not model_args.use_peft:
        raise UserError("the unsloth backend here trains LoRA adapters only; set use_peft: true or use --backend trl")
    fast = unsloth_fast_inference(model_args)
    if fast and not vllm_importable():
        raise UserError("fast_inference needs vLLM: pip install 'vllm>=0.22,<0.32' (or set fast_inference: false)")
    dtype = None if model_args.dtype == "auto" else _torch_dtype(model_args, True)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=spec, max_seq_length=model_args.max_seq_length, load_in_4bit=model_args.load_in_4bit,
        dtype=dtype, fast_inference=fast, max_lora_rank=model_args.effective_max_lora_rank,
        gpu_memory_utilization=model_args.gpu_memory_utilization)
    if not is_adapter(spec):  # an adapter folder comes back with its LoRA already attached
        model = FastLanguageModel.get_peft_model(
            model, r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
            target_modules=list(model_args.lora_target_modules), bias="none",
            use_gradient_checkpointing="unsloth", random_state=model_args.lora_random_state)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    _say(f"unsloth: fast_inference (vLLM) {'on' if fast else 'off'}")
    return model, tokenizer, None


def load_for_training(model_args: ModelArguments, backend: str):
    """``(model, tokenizer, peft_config or None)``; ``backend`` as returned by ``resolve_backend``."""
    spec = ensure_model(model_args)
    if backend == "unsloth":
        return _load_unsloth(model_args, spec)
    if backend != "trl":
        raise UserError(f"load_for_training: backend must be resolved first (got {backend!r})")
    return _load_trl(model_args, spec)
