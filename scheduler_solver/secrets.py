"""Secrets never reach a file: the one scrub applied to every config, argument list and report the project writes.

A setting is secret when its name says so: ``token`` or ``*_token`` (``hub_token``; not a tokenizer's
``eos_token``/``pad_token``), or a name holding ``secret``, ``password`` or ``api_key``. Its value is replaced by
``<redacted>``, wherever it sits: a mapping key, a ``--key value`` / ``--key=value`` pair of an argument list,
at any depth. A string shaped like a Hugging Face token (``hf_`` + 20 or more letters and digits) is redacted
under any name.

    >>> scrub({"hub_token": "hf_abc", "eos_token": "<|im_end|>", "lr": 1e-5})
    {'hub_token': '<redacted>', 'eos_token': '<|im_end|>', 'lr': 1e-05}
    >>> scrub(["--hub_token", "hf_abc", "--max_steps", "4", "--api_key=xyz"])
    ['--hub_token', '<redacted>', '--max_steps', '4', '--api_key=<redacted>']
    >>> scrub("pushed with hf_" + "A1" * 17)
    'pushed with <redacted>'
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

REDACTED = "<redacted>"
_SPECIAL_TOKENS = {"bos", "eos", "pad", "unk", "sep", "cls", "mask"}  # tokenizer settings named *_token
_HF_TOKEN = re.compile(r"hf_[A-Za-z0-9]{20,}")


def is_secret(key: Any) -> bool:
    """Whether a setting of this name holds a secret.

    >>> [is_secret(k) for k in ("hub_token", "token", "pad_token", "max_new_tokens", "wandb_api_key")]
    [True, True, False, False, True]
    """
    k = str(key).lower().replace("-", "_").strip("_")
    if any(word in k for word in ("secret", "password", "passwd", "api_key", "apikey")):
        return True
    if k == "token" or k.endswith("_token"):
        return k[: -len("_token")].rsplit("_", 1)[-1] not in _SPECIAL_TOKENS
    return False


def _flag_key(text: str) -> str:
    return text.lstrip("-").split("=", 1)[0]


def scrub(obj: Any) -> Any:
    """A copy of ``obj`` (mappings, lists, strings, scalars) with every secret value redacted."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret(k) and v not in (None, "") else scrub(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        out, hide_next = [], False
        for item in obj:
            if hide_next and isinstance(item, str) and not item.startswith("--"):
                out.append(REDACTED)
            elif isinstance(item, str) and item.startswith("--") and is_secret(_flag_key(item)):
                out.append(item.split("=", 1)[0] + "=" + REDACTED if "=" in item else item)
            else:
                out.append(scrub(item))
            hide_next = isinstance(item, str) and item.startswith("--") and "=" not in item and is_secret(_flag_key(item))
        return type(obj)(out) if isinstance(obj, tuple) else out
    if isinstance(obj, str):
        return _HF_TOKEN.sub(REDACTED, obj)
    return obj


def take_secrets(settings: Any) -> dict:
    """Move the secret fields of a dataclass (e.g. ``TrainingArguments.hub_token``) out of it: each is set to
    None (secret keys inside mapping fields are dropped) and ``{name: value}`` is returned, so that pickling or
    saving the object (``training_args.bin``) writes no secret."""
    taken = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if is_secret(f.name):
            if value not in (None, ""):
                taken[f.name] = value
                setattr(settings, f.name, None)
        elif isinstance(value, dict) and any(is_secret(k) for k in value):
            setattr(settings, f.name, {k: v for k, v in value.items() if not is_secret(k)})
    return taken


__all__ = ["REDACTED", "is_secret", "scrub", "take_secrets"]
