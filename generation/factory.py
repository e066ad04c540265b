"""Engine names, :func:`make_engine`, and the rule behind ``--engine auto``. Import-light (no torch at import).

    >>> canonical_engine("transformers-static")
    'static'
    >>> choose_engine(adapter=False, completions=400, cuda=True, vllm=True)
    ('static', 'a full model on CUDA; 400 completions < 2000, too few to pay for vLLM start-up')
"""

from __future__ import annotations

from scheduler_solver.errors import UserError

ENGINES = ("transformers", "transformers-cb", "static", "vllm")
#: former names still accepted
ALIASES = {"transformers-static": "static"}
#: rows x samples from which ``auto`` picks vLLM, by what it replaces: its start-up (90-150 s on one H100) must pay
#: for itself. Against the static decoder (a full model; ~10k tokens/s at 100 rows vs vLLM's ~24k) the break-even
#: is ~1,400-2,700 completions of ~800 tokens; against ``model.generate`` (a LoRA adapter) a few hundred.
#: Measured figures and commands: docs/gpu.md#vllm.
VLLM_MIN_COMPLETIONS = {"full": 2000, "adapter": 400}


def canonical_engine(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in ENGINES:
        raise UserError(f"unknown engine {name!r} (choose {', '.join(ENGINES)})")
    return name


def make_engine(name: str, model, tokenizer=None, **options):
    """The engine ``name`` for ``model``: a loaded transformers model and its ``tokenizer`` for ``transformers``,
    ``transformers-cb`` and ``static``; a model folder or Hub id for ``vllm`` (``adapters=[...]`` declares its LoRA
    adapters). ``options`` go to the engine's constructor (``batch_size``, ``progress``; ``strict`` for static;
    ``dtype``, ``gpu_memory_utilization``, ``max_model_len``, ``seed`` for vllm)."""
    name = canonical_engine(name)
    if name == "vllm":
        from .vllm_engine import VLLMEngine

        return VLLMEngine(model, **options)
    if tokenizer is None:
        raise ValueError(f"the {name} engine needs a loaded model and its tokenizer")
    from .hf_engines import ContinuousBatchingEngine, StaticEngine, TransformersEngine

    cls = {"transformers": TransformersEngine, "transformers-cb": ContinuousBatchingEngine, "static": StaticEngine}
    return cls[name](model, tokenizer, **options)


def choose_engine(adapter: bool, completions: int, cuda: bool, vllm: bool) -> tuple[str, str]:
    """``(engine, why)`` for ``--engine auto``: vLLM for a large job on CUDA when it is installed, else the static
    decoder for a full model on CUDA (it refuses LoRA), else ``model.generate``.

    >>> choose_engine(adapter=True, completions=400, cuda=True, vllm=True)[0]
    'vllm'
    >>> choose_engine(adapter=False, completions=2000, cuda=True, vllm=True)[0]
    'vllm'
    >>> choose_engine(adapter=True, completions=2000, cuda=True, vllm=False)
    ('transformers', 'a LoRA adapter (the static decoder runs full models); vLLM is not installed')
    >>> choose_engine(adapter=False, completions=2000, cuda=False, vllm=True)
    ('transformers', 'no CUDA')
    """
    if not cuda:
        return "transformers", "no CUDA"
    threshold = VLLM_MIN_COMPLETIONS["adapter" if adapter else "full"]
    if vllm and completions >= threshold:
        return "vllm", f"vLLM is installed, CUDA is available and {completions} completions >= {threshold}"
    no_vllm = (f"{completions} completions < {threshold}, too few to pay for vLLM start-up" if vllm
               else "vLLM is not installed")
    if not adapter:
        return "static", f"a full model on CUDA; {no_vllm}"
    return "transformers", f"a LoRA adapter (the static decoder runs full models); {no_vllm}"


def auto_engine(adapter: bool, completions: int, device: str = "auto") -> tuple[str, str]:
    """:func:`choose_engine` with what this machine has (``device`` ``cpu`` rules CUDA out)."""
    import torch

    from .vllm_engine import vllm_available

    cuda = device != "cpu" and torch.cuda.is_available()
    return choose_engine(adapter, completions, cuda, vllm_available())
