"""A small-model decoder with a static KV cache and CUDA-graph decoding steps: GRPO's and evaluation's fast path.

Why: a 135M model's decoding step is bound by per-step overhead, not arithmetic. Padded ``model.generate``
spends ~97 ms per step on an H200 for 384 sequences (Python, ~450 kernel launches, a KV cache grown by
``torch.cat``), so a GRPO round of 1,216 tokens takes ~2 minutes. This module runs the same weights through a
re-implementation of the Llama / Qwen2 decoder layer (RMSNorm, rotary embeddings from the model's own rotary
module, grouped-query attention, SiLU MLP) with

* a KV cache allocated once for ``prompt + max_new_tokens`` positions (no growth, no reallocation),
* prefill of the left-padded prompts in one pass (SDPA with a causal + padding mask),
* one decoding step recorded as a CUDA graph per attention-length bucket (256 positions) and replayed:
  no Python or launch overhead, and attention reads only the filled part of the cache,
* sampling inside the graph (Gumbel-max = sampling from ``softmax(logits / T)``; greedy when ``T == 0``;
  with ``min_p`` only tokens of probability at least ``min_p`` times the top token's, as transformers' min-p;
  rows marked ``greedy`` take the argmax while the others sample: GRPO's greedy anchor),
* a stop as soon as every sequence has emitted an EOS (checked every 16 steps), and, in a batch of at least 32
  sequences, the finished ones dropped once at most half of them still runs: the few long completions of a
  round then decode in a small batch (graphs recorded anew for it) instead of dragging the whole batch along.

``fused=True`` runs the same step with fewer, larger kernels: attention through one
``scaled_dot_product_attention`` call per layer (a group's query heads as the query positions of its KV head), and,
on CUDA, the work before and after attention (norms, rotary embeddings, casts, residual adds, the MLP's activation)
compiled by ``torch.compile`` into a few fused kernels shared by every layer. It is the default on CUDA (faster
at every batch size ``benchmarks/profile_static_decode.py`` times; figures in docs/benchmarks.md) and off
elsewhere unless asked; on CPU it runs eagerly and must give the same tokens. ``compile_choice=True`` compiles the
choice of tokens from the whole vocabulary's logits too (sampling, min-p, the lookup decoder's acceptance); it is
off by default.

Weights are a bf16 copy (on CPU: float32) of the model's, refreshed by every :meth:`StaticDecoder.generate`
call, so a trainer can keep float32 master weights and call it after each update (a model already in bf16
shares its tensors, except the fused q/k/v and gate/up matrices: about two thirds of the layer weights).
Norms, softmax and the residual stream run in float32. Anything this does not reproduce exactly (LoRA adapters, rope
scaling that depends on the length, sliding windows; top-p / top-k are not offered) is refused by
:func:`unsupported_reason`; the ``static`` engine (:class:`generation.hf_engines.StaticEngine`) then uses
``model.generate``. On CPU the same step runs eagerly (that is what the tests compare against ``model.generate``).

    from generation.static_decode import StaticDecoder
    completions = StaticDecoder(model).generate(prompt_ids, max_new_tokens=1216, eos_ids=[2], temperature=1.0)

:class:`generation.lookup_decode.LookupDecoder` runs the same decoder with several tokens per step (prompt-lookup
speculation).
"""

from __future__ import annotations

import math
from typing import Sequence

from .settings import generated_length

_ARCHS = ("llama", "qwen2", "mistral")
_ROPE_TYPES = ("default", "linear", "llama3")
BUCKET = 256  # attention-length granularity of the recorded decoding steps
CHECK_EVERY = 16  # decoding steps between checks that every sequence has stopped
COMPACT_MIN = 32  # a batch at least this large drops its finished rows once at most ``compact`` of it still runs
COMPACT_AT = 0.5  # the default share (each drop re-records the step's graphs; timings: docs/benchmarks.md)
MAX_ROWS = 400  # the most rows per batch that ``rows_that_fit`` proposes (the largest batch measured on a GPU)


def _rope_type(cfg) -> str:
    for attr in ("rope_parameters", "rope_scaling"):
        params = getattr(cfg, attr, None)
        if isinstance(params, dict):
            return str(params.get("rope_type", params.get("type", "default")))
    return "default"


def unsupported_reason(model) -> str | None:
    """Why :class:`StaticDecoder` cannot run ``model`` exactly, or None when it can."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(model, "peft_config", None) is not None:
        return "a PEFT/LoRA-wrapped model (merge the adapter first)"
    if getattr(cfg, "model_type", None) not in _ARCHS:
        return f"model_type {getattr(cfg, 'model_type', None)!r} (supported: {', '.join(_ARCHS)})"
    if getattr(cfg, "mlp_bias", False):
        return "MLP biases"
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"hidden_act {cfg.hidden_act!r} (supported: silu)"
    if _rope_type(cfg) not in _ROPE_TYPES:
        return f"rope type {_rope_type(cfg)!r} (supported: {', '.join(_ROPE_TYPES)})"
    layer_types = getattr(cfg, "layer_types", None) or []
    if getattr(cfg, "use_sliding_window", False) or any(t != "full_attention" for t in layer_types):
        return "sliding-window attention"
    if getattr(cfg, "sliding_window", None) and cfg.model_type == "mistral":
        return "sliding-window attention"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(model, "lm_head"):
        return "not a *ForCausalLM with .model.layers and .lm_head"
    if getattr(model, "hf_quantizer", None) is not None and getattr(model, "is_quantized", False):
        return "quantized weights"
    return None


class StaticDecoder:
    """Batched sampling/greedy decoding of one model (see the module docstring).

    ``cuda_graph=None`` records graphs on CUDA and runs eagerly elsewhere; ``fused=None`` fuses on CUDA only (see the
    module docstring); ``compile=None`` compiles the fused step's pointwise work on CUDA only; ``compact``: a batch
    of ``COMPACT_MIN`` rows or more drops its finished rows once at most this share of it still runs (True:
    ``COMPACT_AT``; False or 0 keeps them to the end); ``compile_choice`` compiles the choice of tokens as well
    (with ``compile`` only). After a call, ``compactions`` lists ``(tokens chosen, rows kept)`` for every time
    finished rows were dropped.
    """

    width = 1  # positions per row in one decoding step
    room = 0  # cache positions and output slots beyond max_new_tokens
    chooser = "_pick"  # the method that turns a step's logits into its tokens

    def __init__(self, model, cuda_graph: bool | None = None, fused: bool | None = None, compile: bool | None = None,
                 compact: bool | float = True, compile_choice: bool = False):
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"StaticDecoder cannot run {reason}")
        import torch

        self.model = model
        self.cfg = cfg = model.config
        self.device = next(model.parameters()).device
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.cuda_graph = (self.device.type == "cuda") if cuda_graph is None else cuda_graph
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.eps = cfg.rms_norm_eps
        self.min_p: float | None = None
        self.greedy = None  # during a call: the rows decoded greedily while the others sample (a bool tensor)
        self.weights: list[dict] = []
        share = COMPACT_AT if compact is True else float(compact or 0)
        if not 0 <= share < 1:
            raise ValueError(f"compact must be a share of the batch in [0, 1), got {compact!r}")
        self.compact = share
        self.compactions: list[tuple[int, int]] = []
        self.fused = fused = (self.device.type == "cuda") if fused is None else fused
        on = bool(fused and (self.device.type == "cuda" if compile is None else compile))
        self._compile(on, on and compile_choice)

    def _compile(self, on: bool, choice: bool = False) -> None:
        """The step's work before and after attention compiled by ``torch.compile`` into a few fused kernels when
        ``on``, and its choice of tokens from the whole vocabulary's logits (``chooser``) when ``choice``; else the
        plain methods."""
        import torch

        def compiled(f, yes):
            return torch.compile(f, dynamic=True, fullgraph=True) if yes else f

        self._before, self._after = compiled(self._attn_in, on), compiled(self._attn_out, on)
        self._choose_tokens = compiled(getattr(self, self.chooser), choice)
        self.compiled, self.compiled_choice = on, choice

    def rows_that_fit(self, length: int, free_bytes: int | None = None, share: float = 0.5) -> int:
        """Rows of ``length`` positions (prompt + new tokens) whose KV cache (with ``room``) and logits (``width``
        positions) take at most ``share`` of ``free_bytes`` (default: the GPU's free memory), in [1, MAX_ROWS]."""
        if free_bytes is None:
            import torch

            free_bytes = torch.cuda.mem_get_info(self.device)[0]
        kv = 2 * self.cfg.num_hidden_layers * self.n_kv * self.head_dim * self.dtype.itemsize  # bytes per position
        logits = 3 * self.width * self.cfg.vocab_size * 4  # float32 logits and their scaled copies per row
        return max(1, min(MAX_ROWS, int(share * free_bytes) // ((length + self.room) * kv + logits)))

    # ------------------------------------------------------------ weights

    def _load_weights(self) -> None:
        """A fresh low-precision copy of the model's weights (call after every optimizer update)."""
        import torch

        def cp(t):
            return None if t is None else t.detach().to(self.dtype).contiguous()

        def f32(t):
            return t.detach().float().contiguous()

        inner = self.model.model
        layers = []
        with torch.no_grad():
            for layer in inner.layers:
                at, mlp = layer.self_attn, layer.mlp
                qkv_b = None
                if at.q_proj.bias is not None:
                    qkv_b = cp(torch.cat([at.q_proj.bias, at.k_proj.bias, at.v_proj.bias]))
                layers.append({
                    "ln1": f32(layer.input_layernorm.weight), "ln2": f32(layer.post_attention_layernorm.weight),
                    "qkv": cp(torch.cat([at.q_proj.weight, at.k_proj.weight, at.v_proj.weight])), "qkv_b": qkv_b,
                    "o": cp(at.o_proj.weight), "o_b": cp(at.o_proj.bias),
                    "gu": cp(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])), "down": cp(mlp.down_proj.weight),
                })
            self.weights = layers
            self.embed = cp(inner.embed_tokens.weight)
            self.norm = f32(inner.norm.weight)
            self.lm_head = cp(self.model.lm_head.weight)

    def _rope_tables(self, length: int):
        """cos/sin for positions 0..length-1 from the model's own rotary module (its scaling included)."""
        import torch

        pos = torch.arange(length, device=self.device)[None]
        dummy = torch.zeros(1, device=self.device, dtype=torch.float32)
        with torch.no_grad():
            cos, sin = self.model.model.rotary_emb(dummy, pos)
        return cos[0].float(), sin[0].float()

    # ------------------------------------------------------------ math

    def _rms(self, x, w):
        import torch

        return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w).to(self.dtype)

    @staticmethod
    def _rotate(x, cos, sin):
        import torch

        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin

    def _qkv(self, qkv_w, qkv_b, h, cos, sin):
        """Projections with rotary embeddings; h: [..., hidden] -> q [..., H, d], k/v [..., KV, d]."""
        import torch.nn.functional as F

        qkv = F.linear(h, qkv_w, qkv_b)
        nq, nk = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        q, k, v = qkv.split([nq, nk, nk], dim=-1)
        shape = q.shape[:-1]
        q = q.reshape(*shape, self.n_heads, self.head_dim).float()
        k = k.reshape(*shape, self.n_kv, self.head_dim).float()
        v = v.reshape(*shape, self.n_kv, self.head_dim)
        cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
        return self._rotate(q, cos, sin).to(self.dtype), self._rotate(k, cos, sin).to(self.dtype), v

    def _attn_in(self, x, ln1, qkv, qkv_b, cos, sin):
        """A decoding step's work before attention (one layer): q [B, H, d], k and v [B, KV, d]."""
        return self._qkv(qkv, qkv_b, self._rms(x, ln1), cos, sin)

    def _attn_out(self, x, attn, o, o_b, ln2, gu, down):
        """The work after attention (one layer): output projection, residual, MLP, residual."""
        import torch.nn.functional as F

        x = x + F.linear(attn, o, o_b).float()
        gate, up = F.linear(self._rms(x, ln2), gu).chunk(2, dim=-1)
        return x + F.linear(F.silu(gate) * up, down).float()

    def _prefill(self, ids, pad):
        """Run left-padded prompts [B, P] through the model, fill cache[:, :, :P]; logits of the last position."""
        import torch
        import torch.nn.functional as F

        B, P = ids.shape
        ar = torch.arange(P, device=self.device)
        pos = (ar[None] - pad[:, None]).clamp(min=0)
        cos, sin = self.cos_t[pos], self.sin_t[pos]
        keep = (ar[None, None] <= ar[None, :, None]) & (ar[None, None] >= pad[:, None, None])  # [B, P(q), P(k)]
        keep = keep | torch.eye(P, dtype=torch.bool, device=self.device)[None]  # pad queries see themselves
        keep = keep[:, None]
        x = self.embed[ids].float()
        rep = self.n_heads // self.n_kv
        for w, (kc, vc) in zip(self.weights, self.cache):
            q, k, v = self._attn_in(x, w["ln1"], w["qkv"], w["qkv_b"], cos, sin)  # [B, P, H, d]
            kc[:, :, :P] = k.transpose(1, 2)
            vc[:, :, :P] = v.transpose(1, 2)
            kk = k.transpose(1, 2).repeat_interleave(rep, dim=1)
            vv = v.transpose(1, 2).repeat_interleave(rep, dim=1)
            o = F.scaled_dot_product_attention(q.transpose(1, 2), kk, vv, attn_mask=keep)
            x = self._attn_out(x, o.transpose(1, 2).reshape(B, P, -1), w["o"], w["o_b"], w["ln2"], w["gu"], w["down"])
        last = self._rms(x[:, -1], self.norm)
        return F.linear(last, self.lm_head)  # cast to float32 by _pick

    def _pick(self, logits):
        """Next tokens: argmax (greedy) or Gumbel-max sampling at the set temperature, among the tokens whose
        probability is at least ``min_p`` times the most likely one's when ``min_p`` is set."""
        import torch

        logits = logits.float()
        if self.temperature <= 0:
            return logits.argmax(-1)
        sampled = self._draw(self._scaled(logits))  # drawn for every row: greedy rows leave the others' noise
        return sampled if self.greedy is None else torch.where(self.greedy, logits.argmax(-1), sampled)

    def _scaled(self, logits):
        """Logits at the set temperature, -inf for the tokens ``min_p`` rules out."""
        scaled = logits / self.temperature
        if self.min_p is not None:  # p >= min_p * p_max  <=>  logit >= max logit + log(min_p)
            floor = scaled.max(-1, keepdim=True).values + math.log(self.min_p)
            scaled = scaled.masked_fill(scaled < floor, -math.inf)
        return scaled

    @staticmethod
    def _draw(scaled):
        """One token per row of ``softmax(scaled)`` (Gumbel-max: the argmax of the logits plus Gumbel noise)."""
        import torch

        u = torch.rand_like(scaled).clamp_(min=1e-20)
        return (scaled - torch.log(-torch.log(u))).argmax(-1)

    def _emit(self, nxt, index):
        """Record the tokens chosen (new-token number ``index``, a 1-element tensor), mark stopped rows."""
        import torch

        nxt = torch.where(self.done, self.pad_id, nxt)
        self.out.index_copy_(1, index, nxt[:, None])
        self.done |= torch.isin(nxt, self.eos)
        self.tok.copy_(nxt)

    def _bias(self, keep):
        """A step's attention mask, made once for all layers: 0 where ``keep``, -inf elsewhere, in the attention's
        dtype (the fused step's SDPA would otherwise turn a boolean mask into this at every layer; float32 for the
        matmul attention)."""
        import torch

        dtype = self.dtype if self.fused else torch.float32
        return torch.zeros(keep.shape, device=self.device, dtype=dtype).masked_fill_(~keep, -math.inf)

    def _step(self, length: int):
        """One decoding step for every sequence (attention over cache[:, :, :length]); in-place state."""
        import torch
        import torch.nn.functional as F

        B = self.tok.shape[0]
        cos, sin = self.cos_t[self.pos], self.sin_t[self.pos]  # [B, d]
        keep = (self.ar[:length] <= self.cur) & self.valid[:, :length]  # [B, L]
        bias = self._bias(keep[:, None, None])  # [B, 1, 1, L]
        x = self.embed[self.tok].float()
        g = self.n_heads // self.n_kv
        scale = 1.0 / math.sqrt(self.head_dim)
        for w, (kc, vc) in zip(self.weights, self.cache):
            q, k, v = self._before(x, w["ln1"], w["qkv"], w["qkv_b"], cos, sin)  # q [B, H, d], k/v [B, KV, d]
            kc.index_copy_(2, self.cur, k[:, :, None])
            vc.index_copy_(2, self.cur, v[:, :, None])
            q = q.reshape(B, self.n_kv, g, self.head_dim)  # a group's query heads share one KV head and one mask
            if self.fused:
                o = F.scaled_dot_product_attention(q, kc[:, :, :length], vc[:, :, :length], attn_mask=bias)
            else:
                att = torch.matmul(q, kc[:, :, :length].transpose(-1, -2)).float() * scale + bias  # [B, KV, g, L]
                o = torch.matmul(att.softmax(-1).to(self.dtype), vc[:, :, :length])  # [B, KV, g, d]
            x = self._after(x, o.reshape(B, -1), w["o"], w["o_b"], w["ln2"], w["gu"], w["down"])
        logits = F.linear(self._rms(x, self.norm), self.lm_head)  # [B, V], cast to float32 by the chooser
        self._emit(self._choose_tokens(logits), self.cur - (self.P - 1))  # the token after cache index cur
        self.pos.add_(1)
        self.cur.add_(1)

    # ------------------------------------------------------------ driver

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_ids: Sequence[int],
                 temperature: float = 0.0, pad_id: int = 0, min_p: float | None = None,
                 greedy: Sequence[bool] | None = None) -> list[list[int]]:
        """New tokens per prompt, up to and including the first EOS (or ``max_new_tokens`` without one).
        ``min_p`` (0 < min_p <= 1, sampling only) drops the tokens less likely than ``min_p`` x the top token.
        ``greedy`` (one flag per prompt, sampling only): the flagged rows are decoded greedily in the same batch."""
        import torch

        if not prompts:
            return []
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if not eos_ids:
            raise ValueError("no EOS token ids: generation could not stop")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("an empty prompt")
        if min_p is not None and not 0 < min_p <= 1:
            raise ValueError(f"min_p must be in (0, 1], got {min_p}")
        if greedy is not None and len(greedy) != len(prompts):
            raise ValueError(f"greedy has {len(greedy)} flags for {len(prompts)} prompts")
        self.min_p = None if min_p is None or temperature <= 0 else float(min_p)
        was_training = self.model.training
        self._load_weights()
        try:  # precision is explicit here: a trainer's autocast must not change it
            with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
                return self._generate(prompts, max_new_tokens, eos_ids, temperature, pad_id, greedy)
        finally:
            self.cache = self.graphs = self.pool = self.greedy = None
            self.model.train(was_training)

    def _start(self, prompts, max_new_tokens, eos_ids, temperature, pad_id, greedy, room: int = 0):
        """A batch's state, its prompts prefilled and its first tokens chosen; ``room``: cache positions and output
        slots beyond ``max_new_tokens``. Returns the cache's length and the left-padded prompts [B, P]."""
        import torch

        dev = self.device
        B, P = len(prompts), max(len(p) for p in prompts)
        total = -(-(P + max_new_tokens + room) // 16) * 16  # cache positions, rounded up: mask rows stay aligned
        self.P, self.temperature, self.pad_id = P, float(temperature), int(pad_id)
        mixed = greedy is not None and temperature > 0 and any(greedy)  # at temperature 0 every row is greedy
        self.greedy = torch.tensor([bool(g) for g in greedy], device=dev) if mixed else None
        ids = torch.full((B, P), self.pad_id, dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, P - len(p):] = torch.tensor(list(p), dtype=torch.long)
        ids = ids.to(dev)
        pad = torch.tensor([P - len(p) for p in prompts], device=dev)
        self.cos_t, self.sin_t = self._rope_tables(total)
        self.cache = [(torch.zeros(B, self.n_kv, total, self.head_dim, dtype=self.dtype, device=dev),
                       torch.zeros(B, self.n_kv, total, self.head_dim, dtype=self.dtype, device=dev))
                      for _ in self.weights]
        self.ar = torch.arange(total, device=dev)
        self.valid = self.ar[None] >= pad[:, None]
        self.eos = torch.tensor(sorted(set(eos_ids)), device=dev)
        self.out = torch.full((B, max_new_tokens + room), self.pad_id, dtype=torch.long, device=dev)
        self.done = torch.zeros(B, dtype=torch.bool, device=dev)
        self.tok = torch.zeros(B, dtype=torch.long, device=dev)
        self.pos = P - pad  # position id of `tok`, the last token chosen (rows' prompts start at 0)
        self.cur = torch.tensor([P], device=dev)  # cache index where `tok` goes at the next step
        logits = self._prefill(ids, pad)
        self._emit(self._pick(logits), torch.zeros(1, dtype=torch.long, device=dev))
        self.graphs, self.pool = {}, None
        self.compactions = []
        return total, ids

    def _generate(self, prompts, max_new_tokens, eos_ids, temperature, pad_id, greedy=None):
        import torch

        total, _ = self._start(prompts, max_new_tokens, eos_ids, temperature, pad_id, greedy)
        B, P, dev = len(prompts), self.P, self.device
        final, rows = self.out, torch.arange(B, device=dev)  # every row's tokens; the original row of each row run
        steps = 1  # tokens chosen so far; the next step reads cache indices 0 .. P + steps - 1
        while steps < max_new_tokens:
            if steps % CHECK_EVERY == 0:
                checked = self._check(final, rows)
                if checked is None:
                    break
                final, rows = checked
            length = min(total, -(-(P + steps) // BUCKET) * BUCKET)
            self._advance(length)
            steps += 1
        if final is not self.out:
            final[rows] = self.out
        stop = set(eos_ids)
        return [row[:generated_length(row, stop)[0]] for row in final[:, :steps].tolist()]

    def _check(self, final, rows):
        """A decoding loop's periodic check: None once every row has stopped; else ``(final, rows)``, the finished
        rows dropped first where the batch is due (see :meth:`_drop_finished`; recorded in ``compactions``)."""
        running = int((~self.done).sum())
        if running == 0:
            return None
        if self.compact and len(rows) >= COMPACT_MIN and running <= len(rows) * self.compact:
            final, rows = self._drop_finished(final, rows)
            self.compactions.append((self._chosen(), len(rows)))
        return final, rows

    def _chosen(self) -> int:
        """Tokens chosen so far by the rows still in the batch (the most by any of them)."""
        return int(self.cur) - self.P + 1

    def _drop_finished(self, final, rows):
        """Keep only the rows still running: their state and KV cache sliced out, the finished rows' tokens kept in
        ``final`` ([all rows, max_new_tokens]: the batch's first output tensor, never written again once the batch
        shrinks); the graphs recorded for the larger batch are dropped."""
        if final is not self.out:
            final[rows] = self.out
        keep = (~self.done).nonzero().squeeze(1)
        self.out, self.tok, self.pos, self.done, self.valid = (t[keep] for t in (self.out, self.tok, self.pos,
                                                                                 self.done, self.valid))
        if self.greedy is not None:
            self.greedy = self.greedy[keep]
        self.graphs, self.pool = {}, None
        self.cache = [(k[keep], v[keep]) for k, v in self.cache]
        return final, rows[keep]

    def _advance(self, length: int) -> None:
        """One decoding step: the recorded graph for this attention length, or the eager step. A step that fails to
        compile or to record (an op this torch build cannot compile or record) is run again without compiling,
        then without graphs, with one line on stderr; a failure of the plain eager step is raised."""
        import sys

        while True:
            try:
                if self.cuda_graph:
                    self._graph(length).replay()
                else:
                    self._step(length)
                return
            except RuntimeError as e:
                if self.compiled_choice:  # the cheaper retreat first (the error does not say which part failed)
                    what, then = "the compiled step", "trying it with the choice of tokens uncompiled"
                    self._compile(self.compiled, False)
                    self.graphs = {}
                elif self.compiled:
                    what, then = "compiling the fused step", "running it uncompiled"
                    self._compile(False)
                    self.graphs = {}
                elif self.cuda_graph:
                    what, then = "CUDA graph recording", "decoding without graphs"
                    self.cuda_graph, self.graphs = False, {}
                else:
                    raise
                print(f"static decoder: {what} failed ({str(e).splitlines()[0][:200]}); {then}", file=sys.stderr,
                      flush=True)

    def _state(self):
        """The tensors a decoding step changes in place (restored after the warm-up step before recording)."""
        return [self.tok, self.pos, self.cur, self.done, self.out]

    def _graph(self, length: int):
        """The recorded decoding step for this attention length (recorded on first use)."""
        import torch

        graph = self.graphs.get(length)
        if graph is not None:
            return graph
        live = self._state()
        state = [t.clone() for t in live]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._step(length)  # warm-up outside the graph (cuBLAS handles, lazy init)
        torch.cuda.current_stream().wait_stream(side)
        for t, s in zip(live, state):
            t.copy_(s)
        graph = torch.cuda.CUDAGraph()
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self.pool):
            self._step(length)
        self.graphs[length] = graph
        return graph
