"""Prompt-lookup speculative decoding on the static decoder: several tokens per decoding step, the same output.

A schedule's trace copies most of its tokens from text it has already seen: event names and times from the prompt,
``#3 07:14-08:14`` from its own list, the kept events again in ``<schedule>``. So the tokens after the latest
earlier occurrence of the last few tokens are a good guess of what comes next. Each step of
:class:`LookupDecoder` takes ``draft`` such tokens per row (the longest n-gram of ``ngram`` tokens or fewer that
occurred before, its most recent occurrence), runs the row's last token and the draft through the model in one pass
(``draft + 1`` positions per row, the KV cache written for all of them), and keeps the longest prefix of the draft
the model agrees with plus one token of its own:

* greedy: a draft token is kept while it is the argmax; the tokens are exactly those of :class:`StaticDecoder`;
* sampling: a draft token ``d`` is kept with probability ``p(d)`` (``p``: the temperature / min-p distribution the
  plain step samples from); at the first one refused, the row's token is drawn from ``p`` without ``d``; when all
  are kept, one more is drawn from ``p`` at the next position. That is speculative sampling with a draft that puts
  all its mass on one token, so every token has exactly the distribution plain sampling gives it.

Rows advance by different amounts, so each row keeps its own count of tokens; cache entries written for refused
draft tokens lie beyond the row's count and are overwritten before they are read. The drafting itself runs on the
GPU inside the recorded step (a comparison of each row's token history against its last tokens). The rest is
:class:`StaticDecoder`'s: weights, prefill, CUDA graphs per attention bucket, row dropping.

    from generation.lookup_decode import LookupDecoder
    completions = LookupDecoder(model, draft=4).generate(prompt_ids, max_new_tokens=1216, eos_ids=[2], temperature=1.0)
"""

from __future__ import annotations

import math

from .settings import generated_length
from .static_decode import BUCKET, CHECK_EVERY, StaticDecoder


#: draft tokens per step for greedy evaluation with the static engine (``evaluate``'s default); the measurements
#: behind it are in docs/benchmarks.md (prompt-lookup decoding)
EVAL_DRAFT = 4


def make_decoder(model, draft: int = 0, **options) -> StaticDecoder:
    """:class:`LookupDecoder` with ``draft`` tokens per step, or the plain :class:`StaticDecoder` for 0."""
    return LookupDecoder(model, draft=draft, **options) if draft else StaticDecoder(model, **options)


class LookupDecoder(StaticDecoder):
    """:class:`StaticDecoder` with ``draft`` prompt-lookup tokens per step (n-grams of up to ``ngram`` tokens)."""

    def __init__(self, model, draft: int = 4, ngram: int = 3, **options):
        if draft < 1 or ngram < 1:
            raise ValueError(f"draft and ngram must be at least 1, got {draft} and {ngram}")
        super().__init__(model, **options)
        self.draft, self.ngram = int(draft), int(ngram)
        self.width = self.room = self.draft + 1  # the last token and the draft; a step may write past max_new_tokens
        self.steps = 0  # after a call: decoding steps in which a row still ran (each chose 1 to draft + 1 tokens)
        self.passes = 0  # ... and all steps run (stops are checked every CHECK_EVERY steps)

    # ------------------------------------------------------------ drafting and choosing

    def _draft_tokens(self):
        """[B, draft]: for each row, the tokens after the most recent earlier occurrence of its last n tokens (the
        largest n <= ngram that occurred); the padding token where there is none."""
        import torch

        hist, T, K = self.hist, self.hist.shape[1], self.draft
        end = self.P + self.n - 1  # index of each row's newest token
        ar = self.ar  # the cache's indices, 0 .. T - 1
        match = torch.ones_like(hist, dtype=torch.bool)
        best = torch.zeros_like(end)
        for i in range(self.ngram):  # match[:, s]: the i + 1 tokens ending at s equal the row's last i + 1
            last = hist.gather(1, (end - i).clamp(min=0)[:, None])  # [B, 1]
            shifted = torch.full_like(hist, -1)
            shifted[:, i:] = hist[:, :T - i]
            match = match & (shifted == last) & (ar[None] - i >= self.start[:, None])
            found = match & (ar[None] < end[:, None])
            s = (found * (ar[None] + 1)).amax(1)  # 1 + the latest such s, 0 when none
            best = torch.where(s > 0, s, best)  # longer n-grams override shorter ones
        idx = best[:, None] + torch.arange(K, device=self.device)[None]
        known = (idx <= end[:, None]) & (best[:, None] > 0)  # past the newest token there is nothing to copy yet
        return torch.where(known, hist.gather(1, idx.clamp(max=T - 1)), self.pad_id)

    chooser = "_choose"

    def _choose(self, logits, draft):
        """``(tokens [B, draft + 1], count [B])``: a row's chosen tokens are ``tokens[:count]``. Written so that,
        compiled, it reads the logits [B, draft + 1, V] in a few passes: ``p(d)`` from the draft token's logit and
        a log-sum-exp, the refused token masked by comparing with the vocabulary's indices."""
        import torch

        K = self.draft
        logits = logits.float()
        slots = torch.arange(K + 1, device=logits.device)[None]

        def greedy():  # the argmax at each slot, and how many draft tokens agree with it
            argmax = logits.argmax(-1)  # [B, K + 1]
            return argmax, (argmax[:, :K] == draft).long().cumprod(1).sum(1)

        if self.temperature <= 0:
            argmax, agreed = greedy()
            return argmax, agreed + 1
        scaled = self._scaled(logits)
        head = scaled[:, :K]
        p_draft = (head.gather(2, draft[..., None])[..., 0] - head.logsumexp(-1)).exp()  # [B, K]
        kept = torch.rand_like(p_draft) < p_draft
        n = kept.long().cumprod(1).sum(1)
        padded = torch.cat([draft, torch.full_like(draft[:, :1], -1)], 1)  # no draft token at slot K
        vocab = torch.arange(logits.shape[-1], device=logits.device)
        drawn = self._draw(scaled.masked_fill(vocab == padded[..., None], -math.inf))  # slot j: p without draft[j]
        tokens = torch.where(slots < n[:, None], padded, drawn)  # n <= K: slot K is always drawn
        if self.greedy is not None:
            argmax, agreed = greedy()
            tokens = torch.where(self.greedy[:, None], argmax, tokens)
            n = torch.where(self.greedy, agreed, n)
        return tokens, n + 1

    # ------------------------------------------------------------ one step

    def _step(self, length: int):
        """One step for every row: its last token and draft through the model, the agreed tokens recorded."""
        import torch
        import torch.nn.functional as F

        B, K, S = self.tok.shape[0], self.draft, self.width
        offs = torch.arange(S, device=self.device)
        draft = self._draft_tokens()
        inp = torch.cat([self.tok[:, None], draft], 1)  # [B, S]
        cidx = (self.P + self.n - 1)[:, None] + offs[None]  # cache index of each input
        pos = (self.pos[:, None] + offs[None]).reshape(-1)
        cos, sin = self.cos_t[pos], self.sin_t[pos]
        keep = (self.ar[:length][None, None] <= cidx[..., None]) & self.valid[:, None, :length]  # [B, S, L]
        g = self.n_heads // self.n_kv
        bias = self._bias(keep[:, None, None].expand(B, 1, g, S, length).reshape(B, 1, g * S, length))
        x = self.embed[inp.reshape(-1)].float()  # [B * S, D]: every position is a row for the pointwise work
        write = cidx[:, None, :, None].expand(B, self.n_kv, S, self.head_dim)
        scale = 1.0 / math.sqrt(self.head_dim)
        for w, (kc, vc) in zip(self.weights, self.cache):
            q, k, v = self._before(x, w["ln1"], w["qkv"], w["qkv_b"], cos, sin)  # q [B*S, H, d], k/v [B*S, KV, d]
            kc.scatter_(2, write, k.reshape(B, S, self.n_kv, self.head_dim).transpose(1, 2))
            vc.scatter_(2, write, v.reshape(B, S, self.n_kv, self.head_dim).transpose(1, 2))
            q = q.reshape(B, S, self.n_kv, g, self.head_dim).permute(0, 2, 3, 1, 4).reshape(B, self.n_kv, g * S, -1)
            if self.fused:
                o = F.scaled_dot_product_attention(q, kc[:, :, :length], vc[:, :, :length], attn_mask=bias)
            else:
                att = torch.matmul(q, kc[:, :, :length].transpose(-1, -2)).float() * scale + bias
                o = torch.matmul(att.softmax(-1).to(self.dtype), vc[:, :, :length])  # [B, KV, g * S, d]
            o = o.reshape(B, self.n_kv, g, S, self.head_dim).permute(0, 3, 1, 2, 4).reshape(B * S, -1)
            x = self._after(x, o, w["o"], w["o_b"], w["ln2"], w["gu"], w["down"])
        logits = F.linear(self._rms(x, self.norm), self.lm_head).reshape(B, S, -1)  # cast by the chooser
        tokens, count = self._choose_tokens(logits, draft)
        self.busy.add_((~self.done).any().long())
        # a row stops at its first EOS, at max_new_tokens, or stays stopped; later slots become padding
        eos = torch.isin(tokens, self.eos) & (offs[None] < count[:, None])
        first_eos = torch.where(eos.any(1), eos.long().argmax(1) + 1, count)
        count = torch.minimum(torch.minimum(count, first_eos), self.max_new - self.n)
        count = torch.where(self.done, 0, count)
        tokens = torch.where(offs[None] < count[:, None], tokens, self.pad_id)
        self.out.scatter_(1, self.n[:, None] + offs[None], tokens)  # slot i is new token number n + i
        self.hist.scatter_(1, cidx + 1, tokens)
        last = tokens.gather(1, (count - 1).clamp(min=0)[:, None])[:, 0]
        self.tok.copy_(torch.where(count > 0, last, self.tok))
        self.done |= (eos.any(1) & (first_eos <= count)) | (self.n + count >= self.max_new)
        self.n.add_(count)
        self.pos.add_(count)

    # ------------------------------------------------------------ driver

    def _generate(self, prompts, max_new_tokens, eos_ids, temperature, pad_id, greedy=None):
        import torch

        dev, S = self.device, self.width
        total, ids = self._start(prompts, max_new_tokens, eos_ids, temperature, pad_id, greedy, room=self.room)
        B, P = ids.shape
        self.max_new = max_new_tokens
        self.start = P - self.pos  # each row's first cache index holding a prompt token
        self.hist = torch.full((B, total), -1, dtype=torch.long, device=dev)  # the token at each cache index
        self.hist[:, :P] = ids
        self.hist[:, P] = self.tok
        self.n = torch.ones(B, dtype=torch.long, device=dev)  # tokens chosen per row; the newest is at P + n - 1
        self.done |= self.n >= max_new_tokens
        final, rows = self.out, torch.arange(B, device=dev)
        self.busy = torch.zeros((), dtype=torch.long, device=dev)
        self.passes = 0
        while True:
            if self.passes % CHECK_EVERY == 0:
                checked = self._check(final, rows)
                if checked is None:
                    break
                final, rows = checked
                reach = P + self._chosen() + CHECK_EVERY * S + S  # what the next CHECK_EVERY steps may read
                length = min(total, -(-reach // BUCKET) * BUCKET)
            self._advance(length)
            self.passes += 1
        self.steps = int(self.busy)
        if final is not self.out:
            final[rows] = self.out
        stop = set(eos_ids)
        return [row[:generated_length(row, stop)[0]] for row in final[:, :max_new_tokens].tolist()]

    def _drop_finished(self, final, rows):
        keep = (~self.done).nonzero().squeeze(1)
        self.n, self.hist, self.start = self.n[keep], self.hist[keep], self.start[keep]
        return super()._drop_finished(final, rows)

    def _chosen(self) -> int:
        return int(self.n.max())

    def _state(self):
        return [*super()._state(), self.n, self.hist, self.busy]
