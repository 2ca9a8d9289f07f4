"""Stand-in for modules/prompt_parser.py (v1.10.1).

Prompt editing ``[from:to:when]``, ``[to:when]``, ``[from::when]`` and alternation ``[a|b]`` are parsed by a small
hand-written parser that follows the WebUI's lark grammar (unparseable brackets are kept as literal text, like the
grammar's ``/[][():|]/+`` fallback).
"""

from __future__ import annotations

import re
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any

import torch

# ---------------------------------------------------------------------------------------------------------------
# parsing of the prompt-editing syntax (own parser; mirrors the structure of prompt_parser.schedule_parser)


@dataclass
class _Scheduled:
    before: list | None
    after: list
    when_text: str
    when: int = 0


@dataclass
class _Alternate:
    options: list[list]


@dataclass
class _Emphasized:
    open_text: str
    parts: list = field(default_factory=list)  # mix of str and nested lists (children)


class _ParseError(Exception):
    pass


_re_number = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*\]")
_re_plain = re.compile(r"(?:[^\\\[\]():|]|\\.)+")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text

    def parse_top(self) -> list:
        nodes: list = []
        pos = 0
        n = len(self.text)
        while pos < n:
            ch = self.text[pos]
            if ch in "[(":
                try:
                    node, pos2 = self.parse_construct(pos)
                    nodes.append(node)
                    pos = pos2
                    continue
                except _ParseError:
                    nodes.append(ch)
                    pos += 1
                    continue
            if ch in "]):|":
                nodes.append(ch)
                pos += 1
                continue
            m = _re_plain.match(self.text, pos)
            if m is None:  # lone backslash at the end
                nodes.append(self.text[pos:])
                break
            nodes.append(m.group(0))
            pos = m.end()
        return nodes

    def parse_seq(self, pos: int, stops: str) -> tuple[list, int]:
        nodes: list = []
        n = len(self.text)
        while pos < n:
            ch = self.text[pos]
            if ch in stops:
                return nodes, pos
            if ch in "[(":
                node, pos = self.parse_construct(pos)
                nodes.append(node)
                continue
            if ch in "]):|":
                raise _ParseError
            m = _re_plain.match(self.text, pos)
            if m is None:
                raise _ParseError
            nodes.append(m.group(0))
            pos = m.end()
        raise _ParseError

    def parse_construct(self, pos: int) -> tuple[Any, int]:
        ch = self.text[pos]
        if ch == "(":
            a, p = self.parse_seq(pos + 1, ":)")
            if self.text[p] == ")":
                return _Emphasized("(", [a, ")"]), p + 1
            b, p2 = self.parse_seq(p + 1, ")")
            return _Emphasized("(", [a, ":", b, ")"]), p2 + 1
        a, p = self.parse_seq(pos + 1, ":|]")
        c = self.text[p]
        if c == "]":
            return _Emphasized("[", [a, "]"]), p + 1
        if c == "|":
            options = [a]
            while self.text[p] == "|":
                o, p = self.parse_seq(p + 1, "|]")
                options.append(o)
            return _Alternate(options), p + 1
        m = _re_number.match(self.text, p + 1)
        if m is not None:
            return _Scheduled(None, a, m.group(1)), m.end()
        b, p2 = self.parse_seq(p + 1, ":]")
        if self.text[p2] != ":":
            raise _ParseError
        m = _re_number.match(self.text, p2 + 1)
        if m is None:
            raise _ParseError
        return _Scheduled(a, b, m.group(1)), m.end()


def _walk(nodes: list, fn) -> None:
    for node in nodes:
        if isinstance(node, list):
            _walk(node, fn)
        elif isinstance(node, _Scheduled):
            _walk(node.before or [], fn)
            _walk(node.after, fn)
            fn(node)
        elif isinstance(node, _Alternate):
            for o in node.options:
                _walk(o, fn)
            fn(node)
        elif isinstance(node, _Emphasized):
            _walk(node.parts, fn)


def _render(nodes: list, step: int) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, list):
            out.append(_render(node, step))
        elif isinstance(node, _Emphasized):
            out.append(node.open_text + _render(node.parts, step))
        elif isinstance(node, _Scheduled):
            out.append(_render(node.before or [], step) if step <= node.when else _render(node.after, step))
        elif isinstance(node, _Alternate):
            out.append(_render(node.options[(step - 1) % len(node.options)], step))
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------------
# schedules: which text the prompt reads at which step


def _when_to_step(when_text: str, steps: int, int_offset: int, flt_offset: float, old_rules: bool) -> int:
    """Models how v1.10.1 turns the number of ``[a:b:N]`` into a step: with the old rules a number below 1 is a
    fraction of ``steps`` and anything else a step; with the new rules a number written with a dot is a fraction
    (hires pass: of the hires steps, counted from 1.0) and one without a dot an absolute step (hires pass: counted
    after the base steps).  The result is capped at ``steps`` and truncated towards zero."""
    number = float(when_text)
    if old_rules:
        raw = number * steps if number < 1 else number
    elif "." in when_text:
        raw = (number - flt_offset) * steps
    else:
        raw = number - int_offset
    return min(steps, int(raw))


def get_learned_conditioning_prompt_schedules(
    prompts, base_steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[list[list]]:
    """Models prompt_parser.get_learned_conditioning_prompt_schedules: for each prompt, ``[[last_step, text], ...]``
    sorted by step; the final entry always ends at the pass's step count.  An alternation ``[a|b]`` makes every step
    its own entry; a prompt the grammar rejects is one entry holding the prompt as written.

    >>> g = lambda p: get_learned_conditioning_prompt_schedules([p], 10)[0]
    >>> g("a [b:c:0.5] d")
    [[5, 'a b d'], [10, 'a c d']]
    """
    hires = hires_steps is not None and not use_old_scheduling
    steps = hires_steps if hires else base_steps
    offsets = (base_steps, 1.0) if hires else (0, 0.0)

    def schedule_of(prompt: str) -> list[list]:
        try:
            tree = _Parser(prompt).parse_top()
        except Exception:
            return [[steps, prompt]]
        boundaries = {steps}

        def visit(node) -> None:
            if isinstance(node, _Alternate):
                boundaries.update(range(1, steps + 1))
                return
            node.when = _when_to_step(node.when_text, steps, offsets[0], offsets[1], use_old_scheduling)
            if node.when > 0:
                boundaries.add(node.when)

        _walk(tree, visit)
        return [[step, _render(tree, step)] for step in sorted(boundaries)]

    by_text: dict[str, list[list]] = {}
    for prompt in prompts:
        if prompt not in by_text:
            by_text[prompt] = schedule_of(prompt)
    return [by_text[prompt] for prompt in prompts]


ScheduledPromptConditioning = namedtuple("ScheduledPromptConditioning", ["end_at_step", "cond"])
"""Models prompt_parser.ScheduledPromptConditioning: a cond that is used up to and including ``end_at_step``."""


class SdConditioning(list):
    """Models prompt_parser.SdConditioning: a list of prompt texts that also carries what SDXL's embedders need
    (negative or not, image size); missing fields are taken over from ``copy_from`` (default: ``prompts``)."""

    def __init__(
        self,
        prompts,
        is_negative_prompt: bool = False,
        width: int | None = None,
        height: int | None = None,
        copy_from=None,
        **fork_fields,
    ) -> None:
        list.__init__(self, prompts)
        source = prompts if copy_from is None else copy_from
        given = {"is_negative_prompt": is_negative_prompt, "width": width, "height": height}
        fallback = {"is_negative_prompt": False, "width": None, "height": None}
        if _forge2_family():  # Forge and Neo: the distilled CFG scale (Flux guidance; the shift of Neo's flow models)
            given["distilled_cfg_scale"] = fork_fields.pop("distilled_cfg_scale", None)
            fallback["distilled_cfg_scale"] = None
        if fork_fields:
            raise TypeError(f"SdConditioning() got an unexpected keyword argument {next(iter(fork_fields))!r}")
        for name, value in given.items():
            setattr(self, name, value or getattr(source, name, fallback[name]))


def _forge2_family() -> bool:
    import sys

    fork = getattr(sys.modules.get("modules.processing"), "fork", None)
    return fork is not None and fork.family == 2


def _split_rows(encoded, count: int) -> list:
    """One cond per text out of a batched encoding (a tensor, or SDXL's dict of tensors)."""
    if isinstance(encoded, dict):
        return [{key: tensor[row] for key, tensor in encoded.items()} for row in range(count)]
    return [encoded[row] for row in range(count)]


def get_learned_conditioning(
    model,
    prompts: SdConditioning | list[str],
    steps: int,
    hires_steps: int | None = None,
    use_old_scheduling: bool = False,
) -> list[list[ScheduledPromptConditioning]]:
    """Models prompt_parser.get_learned_conditioning: a schedule of ScheduledPromptConditioning per prompt.  Each
    distinct prompt is encoded once, in order of first appearance, with all texts of its schedule in a single
    ``model.get_learned_conditioning`` call (an SdConditioning that inherits the batch's size/negative flag);
    repeated prompts share the same schedule object."""
    schedules = get_learned_conditioning_prompt_schedules(prompts, steps, hires_steps, use_old_scheduling)
    done: dict[str, list[ScheduledPromptConditioning]] = {}
    for prompt, schedule in zip(prompts, schedules, strict=True):
        if prompt in done:
            continue
        encoded = model.get_learned_conditioning(SdConditioning([text for _, text in schedule], copy_from=prompts))
        rows = _split_rows(encoded, len(schedule))
        done[prompt] = [ScheduledPromptConditioning(entry[0], row) for entry, row in zip(schedule, rows, strict=True)]
    return [done[prompt] for prompt in prompts]


re_AND = re.compile(r"\bAND\b")
_re_trailing_weight = re.compile(r"\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+))\s*$")


def _text_and_weight(subprompt: str) -> tuple[str, float]:
    """A sub-prompt's text and its ``:weight`` suffix (1.0 when absent); trailing white space is not part of it."""
    found = _re_trailing_weight.search(subprompt)
    if found is None:
        return subprompt.rstrip(), 1.0
    return subprompt[: found.start()], float(found.group(1))


def get_multicond_prompt_list(prompts: SdConditioning | list[str]):
    """Models prompt_parser.get_multicond_prompt_list: every prompt split on the word AND into weighted sub-prompts;
    equal sub-prompt texts across the batch are stored once.  Returns (per prompt a list of (index, weight), the
    flat SdConditioning of distinct texts, text -> index)."""
    flat = SdConditioning([], copy_from=prompts)
    index_of: dict[str, int] = {}
    per_prompt = []
    for prompt in prompts:
        pairs = []
        for subprompt in re_AND.split(prompt):
            text, weight = _text_and_weight(subprompt)
            if text not in index_of:
                index_of[text] = len(flat)
                flat.append(text)
            pairs.append((index_of[text], weight))
        per_prompt.append(pairs)
    return per_prompt, flat, index_of


class ComposableScheduledPromptConditioning:
    """Models prompt_parser.ComposableScheduledPromptConditioning: one AND-part's schedule and its weight."""

    def __init__(self, schedules: list[ScheduledPromptConditioning], weight: float = 1.0) -> None:
        self.schedules, self.weight = schedules, weight


class MulticondLearnedConditioning:
    """Models prompt_parser.MulticondLearnedConditioning: per batch item its AND-parts; ``shape`` is (batch size,)."""

    def __init__(self, shape: tuple, batch: list[list[ComposableScheduledPromptConditioning]]) -> None:
        self.shape, self.batch = shape, batch


def get_multicond_learned_conditioning(
    model, prompts, steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> MulticondLearnedConditioning:
    """Models prompt_parser.get_multicond_learned_conditioning: the distinct AND-parts of the batch are encoded
    together (via get_learned_conditioning), then regrouped per prompt with their weights."""
    per_prompt, flat, _ = get_multicond_prompt_list(prompts)
    encoded = get_learned_conditioning(model, flat, steps, hires_steps, use_old_scheduling)
    batch = [[ComposableScheduledPromptConditioning(encoded[i], w) for i, w in pairs] for pairs in per_prompt]
    return MulticondLearnedConditioning((len(prompts),), batch)


class DictWithShape(dict):
    """Models prompt_parser.DictWithShape: SDXL's cond dict, whose ``.shape`` is that of its 'crossattn' entry."""

    def __init__(self, x: dict, shape: Any = None) -> None:
        dict.__init__(self, x)

    @property
    def shape(self):
        return self["crossattn"].shape


def _cond_at(schedule: list[ScheduledPromptConditioning], step: int):
    """The cond a schedule uses at ``step``: the first entry that has not ended yet (the first entry when all have)."""
    for entry in schedule:
        if step <= entry.end_at_step:
            return entry.cond
    return schedule[0].cond


def reconstruct_cond_batch(c: list[list[ScheduledPromptConditioning]], current_step: int):
    """Models prompt_parser.reconstruct_cond_batch: the batch's uncond at ``current_step`` as one tensor (or
    DictWithShape for SDXL).  Like v1.10.1 there is no padding here, so items of different token length fail."""
    picked = [_cond_at(schedule, current_step) for schedule in c]
    if isinstance(picked[0], dict):
        return DictWithShape({key: torch.stack([cond[key] for cond in picked]) for key in picked[0]})
    first = c[0][0].cond
    return torch.stack(picked).to(device=first.device, dtype=first.dtype)


def stack_conds(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Models prompt_parser.stack_conds: conds shorter than the longest are padded with copies of their last token
    vector, then stacked. Conds of one shape are stacked as they are (Forge and Neo try that first, which is how
    Flux's one-number ``guidance`` per prompt gets through; A1111 gives the same result for them)."""
    if all(t.shape == tensors[0].shape for t in tensors):
        return torch.stack(tensors)
    longest = max(t.shape[0] for t in tensors)
    padded = []
    for t in tensors:
        missing = longest - t.shape[0]
        padded.append(t if missing == 0 else torch.cat([t, t[-1:].expand(missing, -1)], dim=0))
    return torch.stack(padded)


def reconstruct_multicond_batch(c: MulticondLearnedConditioning, current_step: int):
    """Models prompt_parser.reconstruct_multicond_batch: every AND-part of every item at ``current_step``, stacked
    (padded to the longest), and per item the list of (row in the stack, weight)."""
    rows: list = []
    conds_list = []
    for parts in c.batch:
        item = []
        for part in parts:
            item.append((len(rows), part.weight))
            rows.append(_cond_at(part.schedules, current_step))
        conds_list.append(item)
    if isinstance(rows[0], dict):
        return conds_list, DictWithShape({key: stack_conds([row[key] for row in rows]) for key in rows[0]})
    first = c.batch[0][0].schedules[0].cond
    return conds_list, stack_conds(rows).to(device=first.device, dtype=first.dtype)


# ---------------------------------------------------------------------------------------------------------------
# attention / emphasis: "(a)", "[a]", "(a:1.3)", escapes and BREAK

_EMPHASIS_UP = 1.1
_re_weight_close = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
_re_break = re.compile(r"\s*\bBREAK\b\s*", re.S)
_SPECIAL = "\\()[]:"
_ESCAPABLE = "()[]\\"


def _attention_tokens(text: str):
    """Yields (kind, value) for the emphasis syntax: 'lit' (literal text, escapes resolved: a backslash before one of
    ``()[]\\`` yields that character, a lone backslash yields nothing), 'open' ('(' or '['), 'weight' (the number
    of ``:N)``, together with the raw text in case no round bracket is open), 'close' (')' or ']'), and 'text'
    (plain text between special characters, which may hold BREAK)."""
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch == "\\":
            nxt = text[pos + 1 : pos + 2]
            if nxt and nxt in _ESCAPABLE:
                yield "lit", nxt
                pos += 2
            else:
                yield "lit", ""
                pos += 1
        elif ch in "([":
            yield "open", ch
            pos += 1
        elif ch in ")]":
            yield "close", ch
            pos += 1
        elif ch == ":":
            m = _re_weight_close.match(text, pos)
            if m is None:
                yield "text", ":"
                pos += 1
            else:
                yield "weight", (m.group(1), m.group(0))
                pos = m.end()
        else:
            end = pos
            while end < len(text) and text[end] not in _SPECIAL:
                end += 1
            yield "text", text[pos:end]
            pos = end


def parse_prompt_attention(text: str) -> list[list]:
    """Models prompt_parser.parse_prompt_attention: ``[[text, weight], ...]``.  ``(x)`` multiplies by 1.1, ``[x]``
    divides by 1.1, ``(x:w)`` multiplies by w; brackets left open apply to the end of the prompt (round ones first,
    then square ones); closers with nothing to close, and ``:w)`` outside round brackets, are text; BREAK becomes
    ``["BREAK", -1]``; neighbouring pieces of equal weight are joined; an empty prompt is ``[["", 1.0]]``."""
    pieces: list[list] = []
    open_at: dict[str, list[int]] = {"(": [], "[": []}

    def scale_from(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            piece[1] *= factor

    for kind, value in _attention_tokens(text):
        if kind == "lit":
            pieces.append([value, 1.0])
        elif kind == "open":
            open_at[value].append(len(pieces))
        elif kind == "weight" and open_at["("]:
            scale_from(open_at["("].pop(), float(value[0]))
        elif kind == "close" and open_at["(" if value == ")" else "["]:
            scale_from(open_at["(" if value == ")" else "["].pop(), _EMPHASIS_UP if value == ")" else 1 / _EMPHASIS_UP)
        else:
            raw = value[1] if kind == "weight" else value
            for n, part in enumerate(_re_break.split(raw)):
                if n:
                    pieces.append(["BREAK", -1])
                pieces.append([part, 1.0])
    for start in open_at["("]:
        scale_from(start, _EMPHASIS_UP)
    for start in open_at["["]:
        scale_from(start, 1 / _EMPHASIS_UP)

    merged: list[list] = []
    for piece in pieces or [["", 1.0]]:
        if merged and merged[-1][1] == piece[1]:
            merged[-1][0] += piece[0]
        else:
            merged.append(piece)
    return merged
