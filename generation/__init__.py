"""Generation: the engines that turn prompts into completions, behind one interface.

Evaluation (``qwen-scheduler evaluate --engine``), GRPO rollouts (``generation_engine: static``) and hard-prompt
mining all generate through :func:`make_engine` and the :class:`~generation.engine.Engine` it returns:

* ``transformers`` -- batched, left-padded ``model.generate`` (CPU or GPU, LoRA through PEFT);
* ``transformers-cb`` -- transformers' continuous batching (``model.generate_batch``);
* ``static`` -- the static-KV-cache, CUDA-graph decoder of :mod:`generation.static_decode` (full Llama/Qwen2
  models; falls back to ``model.generate`` elsewhere);
* ``vllm`` -- vLLM's offline engine in a spawned process per base model, LoRA adapters as ``LoRARequest``.

Modules: :mod:`.settings` (settings, jobs, records), :mod:`.engine` (the interface), :mod:`.hf_engines`,
:mod:`.static_decode`, :mod:`.vllm_engine`, :mod:`.factory` (names, ``make_engine``, ``--engine auto``).
"""

from .engine import Engine, ModelEngine
from .factory import ENGINES, VLLM_MIN_COMPLETIONS, auto_engine, canonical_engine, choose_engine, make_engine
from .settings import GenerationSettings, Job

__all__ = ["ENGINES", "VLLM_MIN_COMPLETIONS", "Engine", "GenerationSettings", "Job", "ModelEngine", "auto_engine",
           "canonical_engine", "choose_engine", "make_engine"]
