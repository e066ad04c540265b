"""The one prompt template, shared by training, evaluation and the SFT data.

The system and user texts are the reference project's (anakin87/qwen-scheduler-grpo,
``train_grpo.ipynb``), kept verbatim so results stay comparable. A dataset row's
``prompt`` column (``"Events:\\n- ...\\n\\nPriorities:\\n- ..."``) is appended to the
user text.

    >>> msgs = build_messages("Events:\\n- A (09:00 - 10:00)\\n\\nPriorities:\\n- A")
    >>> [m["role"] for m in msgs], msgs[1]["content"].endswith("Priorities:\\n- A")
    (['system', 'user'], True)
    >>> print(render_schedule([["A", "09:00", "10:00"]]))
    <schedule>
    <event>
    <name>A</name>
    <start>09:00</start>
    <end>10:00</end>
    </event>
    </schedule>
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence, Union

SYSTEM_PROMPT = """You are a precise event scheduler.
1. First, reason through the problem inside <think> and </think> tags. Here you can create drafts, compare alternatives, and check for mistakes.
2. When confident, output the final schedule inside <schedule> and </schedule> tags. Your schedule must strictly follow the rules provided by the user."""

USER_PROMPT = """Task: create an optimized schedule based on the given events.

Rules:
- The schedule MUST be in strict chronological order. Do NOT place priority events earlier unless their actual start time is earlier.
- Event start and end times are ABSOLUTE. NEVER change, shorten, adjust, or split them.
- Priority events (weight = 2) carry more weight than normal events (weight = 1), but they MUST still respect chronological order.
- Maximize the sum of weighted event durations.
- No overlaps allowed. In conflicts, include the event with the higher weighted time.
- Some events may be excluded if needed to meet these rules.


You must use this format:  

<think>...</think>
<schedule>
<event>
<name>...</name>
<start>...</start>
<end>...</end>
</event>
...
</schedule>

---

"""

Messages = list[dict[str, str]]


def problem_text(row_or_text: Union[str, Mapping[str, Any]]) -> str:
    """The ``Events/Priorities`` text of a row (its ``prompt`` column, or built from ``events``)."""
    if isinstance(row_or_text, str):
        return row_or_text
    text = row_or_text.get("prompt")
    if isinstance(text, str) and text:
        return text
    from .events import Problem  # local: keeps this module import-light

    return Problem.from_row(row_or_text).prompt_text()


def build_messages(row_or_text: Union[str, Mapping[str, Any]], system_prompt: str = SYSTEM_PROMPT) -> Messages:
    """Chat messages for one problem: the system prompt, then the rules text + the problem."""
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": USER_PROMPT + problem_text(row_or_text)},
    ]


def chat_prompt(tokenizer, messages: Messages) -> str:
    """Apply the tokenizer's chat template with the generation prompt (the text a model continues)."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def render_schedule(events: Iterable[Sequence[str]]) -> str:
    """The ``<schedule>`` block for ``[[name, start, end], ...]`` in the exact output format."""
    parts = ["<schedule>"]
    for name, start, end in events:
        parts += ["<event>", f"<name>{name}</name>", f"<start>{start}</start>", f"<end>{end}</end>", "</event>"]
    parts.append("</schedule>")
    return "\n".join(parts)


def render_answer(events: Iterable[Sequence[str]], reasoning: str) -> str:
    """A full completion: ``<think>reasoning</think>`` followed by the schedule block."""
    return f"<think>\n{reasoning}\n</think>\n{render_schedule(events)}"
