"""Engine names, :func:`make_engine`, and the rule behind ``--engine auto``. Import-light (no torch at import).

    >>> canonical_engine("transformers-static")
    'static'
    >>> choose_engine(adapter=False, completions=400, cuda=True, vllm=True, sampled=True)
    ('static', 'a full model on CUDA; 400 sampled completions < 6000, too few to pay for vLLM start-up')
"""

from __future__ import annotations

from scheduler_solver.errors import UserError

ENGINES = ("transformers", "transformers-cb", "static", "vllm")
#: former names still accepted
ALIASES = {"transformers-static": "static"}
#: rows x samples from which ``auto`` picks vLLM: its start-up (~50 s with its compile cache, ~150 s without, on one
#: H100) must pay for itself against what it replaces. Measured on H100s (docs/gpu.md#vllm): a full SmolLM2 model
#: greedy, the static decoder with prompt lookup 50k generated tokens/s, vLLM 37k (never worth it: no entry);
#: sampled (temperature 1), the static decoder 26k vs vLLM 52k; a LoRA adapter, ``model.generate`` 0.8k vs vLLM 18k.
#: With a 100 s start-up that is ~6,000 sampled completions of ~800 tokens and ~100 for an adapter (estimates).
VLLM_MIN_COMPLETIONS = {"sampled": 6000, "adapter": 100}


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


def choose_engine(adapter: bool, completions: int, cuda: bool, vllm: bool, sampled: bool = False) -> tuple[str, str]:
    """``(engine, why)`` for ``--engine auto``: on CUDA, the static decoder for a full model decoded greedily; vLLM
    for a large sampled or adapter job when it is installed (how large: :data:`VLLM_MIN_COMPLETIONS`), else the
    static decoder for a full model (it refuses LoRA), else ``model.generate``.

    >>> choose_engine(adapter=True, completions=100, cuda=True, vllm=True)[0]
    'vllm'
    >>> choose_engine(adapter=False, completions=6000, cuda=True, vllm=True, sampled=True)[0]
    'vllm'
    >>> choose_engine(adapter=False, completions=10**6, cuda=True, vllm=True)[0]
    'static'
    >>> choose_engine(adapter=True, completions=2000, cuda=True, vllm=False)
    ('transformers', 'a LoRA adapter (the static decoder runs full models); vLLM is not installed')
    >>> choose_engine(adapter=False, completions=2000, cuda=False, vllm=True)
    ('transformers', 'no CUDA')
    """
    if not cuda:
        return "transformers", "no CUDA"
    kind = "adapter" if adapter else "sampled" if sampled else "greedy"
    if kind == "greedy":
        return "static", "a full model on CUDA, greedy: the static decoder with prompt lookup outpaces vLLM"
    threshold = VLLM_MIN_COMPLETIONS[kind]
    what = f"{completions} {'' if adapter else kind + ' '}completions"
    if vllm and completions >= threshold:
        return "vllm", f"vLLM is installed, CUDA is available and {what} >= {threshold}"
    no_vllm = f"{what} < {threshold}, too few to pay for vLLM start-up" if vllm else "vLLM is not installed"
    if not adapter:
        return "static", f"a full model on CUDA; {no_vllm}"
    return "transformers", f"a LoRA adapter (the static decoder runs full models); {no_vllm}"


def auto_engine(adapter: bool, completions: int, device: str = "auto", sampled: bool = False) -> tuple[str, str]:
    """:func:`choose_engine` with what this machine has (``device`` ``cpu`` rules CUDA out)."""
    import torch

    from .vllm_engine import vllm_available

    cuda = device != "cpu" and torch.cuda.is_available()
    return choose_engine(adapter, completions, cuda, vllm_available(), sampled)
