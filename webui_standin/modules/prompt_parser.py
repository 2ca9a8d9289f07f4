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


def get_learned_conditioning_prompt_schedules(
    prompts, base_steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[list[list]]:
    """mirrors prompt_parser.get_learned_conditioning_prompt_schedules.

    >>> g = lambda p: get_learned_conditioning_prompt_schedules([p], 10)[0]
    >>> g("a [b:c:0.5] d")
    [[5, 'a b d'], [10, 'a c d']]
    """
    if hires_steps is None or use_old_scheduling:
        int_offset, flt_offset, steps = 0, 0.0, base_steps
    else:
        int_offset, flt_offset, steps = base_steps, 1.0, hires_steps

    def get_schedule(prompt: str) -> list[list]:
        try:
            tree = _Parser(prompt).parse_top()
        except Exception:
            return [[steps, prompt]]
        res = {steps}

        def collect(node) -> None:
            if isinstance(node, _Scheduled):
                s = node.when_text
                v = float(s)
                if use_old_scheduling:
                    v = v * steps if v < 1 else v
                elif "." in s:
                    v = (v - flt_offset) * steps
                else:
                    v = v - int_offset
                node.when = min(steps, int(v))
                if node.when >= 1:
                    res.add(node.when)
            elif isinstance(node, _Alternate):
                res.update(range(1, steps + 1))

        _walk(tree, collect)
        return [[t, _render(tree, t)] for t in sorted(res)]

    promptdict = {prompt: get_schedule(prompt) for prompt in set(prompts)}
    return [promptdict[prompt] for prompt in prompts]


ScheduledPromptConditioning = namedtuple("ScheduledPromptConditioning", ["end_at_step", "cond"])
"""mirrors prompt_parser.ScheduledPromptConditioning"""


class SdConditioning(list):
    """mirrors prompt_parser.SdConditioning: a list of prompts plus the extra info SDXL needs to encode them."""

    def __init__(
        self,
        prompts,
        is_negative_prompt: bool = False,
        width: int | None = None,
        height: int | None = None,
        copy_from=None,
    ) -> None:
        super().__init__()
        self.extend(prompts)
        if copy_from is None:
            copy_from = prompts
        self.is_negative_prompt = is_negative_prompt or getattr(copy_from, "is_negative_prompt", False)
        self.width = width or getattr(copy_from, "width", None)
        self.height = height or getattr(copy_from, "height", None)


def get_learned_conditioning(
    model,
    prompts: SdConditioning | list[str],
    steps: int,
    hires_steps: int | None = None,
    use_old_scheduling: bool = False,
) -> list[list[ScheduledPromptConditioning]]:
    """mirrors prompt_parser.get_learned_conditioning: one schedule (list of ScheduledPromptConditioning) per prompt;
    all texts of one prompt's schedule are encoded in one model.get_learned_conditioning call."""
    res = []
    prompt_schedules = get_learned_conditioning_prompt_schedules(prompts, steps, hires_steps, use_old_scheduling)
    cache: dict[str, list] = {}
    for prompt, prompt_schedule in zip(prompts, prompt_schedules, strict=True):
        cached = cache.get(prompt, None)
        if cached is not None:
            res.append(cached)
            continue
        texts = SdConditioning([x[1] for x in prompt_schedule], copy_from=prompts)
        conds = model.get_learned_conditioning(texts)
        cond_schedule = []
        for i, (end_at_step, _) in enumerate(prompt_schedule):
            if isinstance(conds, dict):
                cond = {k: v[i] for k, v in conds.items()}
            else:
                cond = conds[i]
            cond_schedule.append(ScheduledPromptConditioning(end_at_step, cond))
        cache[prompt] = cond_schedule
        res.append(cond_schedule)
    return res


re_AND = re.compile(r"\bAND\b")
re_weight = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")


def get_multicond_prompt_list(prompts: SdConditioning | list[str]):
    """mirrors prompt_parser.get_multicond_prompt_list: splits on AND, reads ':weight', dedups subprompts."""
    res_indexes = []
    prompt_indexes: dict[str, int] = {}
    prompt_flat_list = SdConditioning(prompts)
    prompt_flat_list.clear()
    for prompt in prompts:
        subprompts = re_AND.split(prompt)
        indexes = []
        for subprompt in subprompts:
            match = re_weight.search(subprompt)
            text, weight = match.groups() if match is not None else (subprompt, 1.0)
            weight = float(weight) if weight is not None else 1.0
            index = prompt_indexes.get(text, None)
            if index is None:
                index = len(prompt_flat_list)
                prompt_flat_list.append(text)
                prompt_indexes[text] = index
            indexes.append((index, weight))
        res_indexes.append(indexes)
    return res_indexes, prompt_flat_list, prompt_indexes


class ComposableScheduledPromptConditioning:
    """mirrors prompt_parser.ComposableScheduledPromptConditioning"""

    def __init__(self, schedules: list[ScheduledPromptConditioning], weight: float = 1.0) -> None:
        self.schedules = schedules
        self.weight = weight


class MulticondLearnedConditioning:
    """mirrors prompt_parser.MulticondLearnedConditioning"""

    def __init__(self, shape: tuple, batch: list[list[ComposableScheduledPromptConditioning]]) -> None:
        self.shape = shape  # the shape field is needed to send this object to DDIM/PLMS
        self.batch = batch


def get_multicond_learned_conditioning(
    model, prompts, steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> MulticondLearnedConditioning:
    """mirrors prompt_parser.get_multicond_learned_conditioning"""
    res_indexes, prompt_flat_list, _prompt_indexes = get_multicond_prompt_list(prompts)
    learned_conditioning = get_learned_conditioning(model, prompt_flat_list, steps, hires_steps, use_old_scheduling)
    res = []
    for indexes in res_indexes:
        res.append([ComposableScheduledPromptConditioning(learned_conditioning[i], weight) for i, weight in indexes])
    return MulticondLearnedConditioning(shape=(len(prompts),), batch=res)


class DictWithShape(dict):
    """mirrors prompt_parser.DictWithShape: an SDXL cond dict whose .shape is the 'crossattn' shape."""

    def __init__(self, x: dict, shape: Any = None) -> None:
        super().__init__()
        self.update(x)

    @property
    def shape(self):
        return self["crossattn"].shape


def reconstruct_cond_batch(c: list[list[ScheduledPromptConditioning]], current_step: int):
    """mirrors prompt_parser.reconstruct_cond_batch: the uncond of every batch item at current_step (no padding:
    items whose token lengths differ fail, like in the WebUI)."""
    param = c[0][0].cond
    is_dict = isinstance(param, dict)
    if is_dict:
        dict_cond = param
        res: Any = {k: torch.zeros((len(c),) + v.shape, device=v.device, dtype=v.dtype) for k, v in dict_cond.items()}
        res = DictWithShape(res, (len(c),) + dict_cond["crossattn"].shape)
    else:
        res = torch.zeros((len(c),) + param.shape, device=param.device, dtype=param.dtype)
    for i, cond_schedule in enumerate(c):
        target_index = 0
        for current, entry in enumerate(cond_schedule):
            if current_step <= entry.end_at_step:
                target_index = current
                break
        if is_dict:
            for k, v in cond_schedule[target_index].cond.items():
                res[k][i] = v
        else:
            res[i] = cond_schedule[target_index].cond
    return res


def stack_conds(tensors: list[torch.Tensor]) -> torch.Tensor:
    """mirrors prompt_parser.stack_conds: pads shorter conds by repeating their last token vector."""
    token_count = max([x.shape[0] for x in tensors])
    for i in range(len(tensors)):
        if tensors[i].shape[0] != token_count:
            last_vector = tensors[i][-1:]
            last_vector_repeated = last_vector.repeat([token_count - tensors[i].shape[0], 1])
            tensors[i] = torch.vstack([tensors[i], last_vector_repeated])
    return torch.stack(tensors)


def reconstruct_multicond_batch(c: MulticondLearnedConditioning, current_step: int):
    """mirrors prompt_parser.reconstruct_multicond_batch: returns (conds_list, stacked cond tensor or DictWithShape)."""
    param = c.batch[0][0].schedules[0].cond
    tensors = []
    conds_list = []
    for composable_prompts in c.batch:
        conds_for_batch = []
        for composable_prompt in composable_prompts:
            target_index = 0
            for current, entry in enumerate(composable_prompt.schedules):
                if current_step <= entry.end_at_step:
                    target_index = current
                    break
            conds_for_batch.append((len(tensors), composable_prompt.weight))
            tensors.append(composable_prompt.schedules[target_index].cond)
        conds_list.append(conds_for_batch)
    if isinstance(tensors[0], dict):
        keys = list(tensors[0].keys())
        stacked: Any = {k: stack_conds([x[k] for x in tensors]) for k in keys}
        stacked = DictWithShape(stacked, stacked["crossattn"].shape)
    else:
        stacked = stack_conds(tensors).to(device=param.device, dtype=param.dtype)
    return conds_list, stacked


re_attention = re.compile(
    r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:
""",
    re.X,
)
re_break = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_prompt_attention(text: str) -> list[list]:
    """mirrors prompt_parser.parse_prompt_attention: [[text, weight], ...] with (x)=*1.1, [x]=/1.1, (x:w)=*w,
    'BREAK' as ["BREAK", -1]; runs of equal weight are merged."""
    res: list[list] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    def multiply_range(start_position: int, multiplier: float) -> None:
        for p in range(start_position, len(res)):
            res[p][1] *= multiplier

    for m in re_attention.finditer(text):
        tok = m.group(0)
        weight = m.group(1)
        if tok.startswith("\\"):
            res.append([tok[1:], 1.0])
        elif tok == "(":
            round_brackets.append(len(res))
        elif tok == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), float(weight))
        elif tok == ")" and round_brackets:
            multiply_range(round_brackets.pop(), 1.1)
        elif tok == "]" and square_brackets:
            multiply_range(square_brackets.pop(), 1 / 1.1)
        else:
            parts = re.split(re_break, tok)
            for i, part in enumerate(parts):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])
    for pos in round_brackets:
        multiply_range(pos, 1.1)
    for pos in square_brackets:
        multiply_range(pos, 1 / 1.1)
    if len(res) == 0:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res
