"""Detector policies evaluated offline on collected cases (`bench/auto_collect.py`): pure functions.

A policy switches an image at the first step k in [low, high) whose signal passes tau, else at ``high``.
``lag`` 0 means the signal measured at step k decides step k (the switch then needs the negative branch
evaluated once at that step); ``lag`` 1 means step k is decided from the signal of step k - 1 (no extra work).
"""

from __future__ import annotations

import torch


def switch_steps(signal: torch.Tensor, tau: float, higher: bool, low: int, high: int, lag: int) -> torch.Tensor:
    """signal [steps, n] -> switch step per case [n] (long)."""
    steps, n = signal.shape
    if lag:
        signal = torch.cat([torch.full_like(signal[:lag], float("nan")), signal[:-lag]])
    passed = signal >= tau if higher else signal <= tau
    passed &= ~torch.isnan(signal)
    idx = torch.arange(steps).unsqueeze(1).expand(steps, n)
    window = (idx >= low) & (idx < high)
    hit = passed & window
    first = torch.where(hit, idx, torch.full_like(idx, high)).min(dim=0).values
    return first.clamp(max=high)


def extra_evaluations(switch: torch.Tensor, low: int, high: int, kind: str) -> torch.Tensor:
    """Extra UNet evaluations per image: "every" (negative evaluated at each step of the window until the
    switch), "at_switch" (once, when the signal switches before ``high``) or "none"."""
    detected = switch < high
    if kind == "every":
        return torch.where(detected, switch - low + 1, torch.full_like(switch, max(0, high - low))).float()
    if kind == "at_switch":
        return detected.float()
    return torch.zeros_like(switch, dtype=torch.float)


def case_scores(score: torch.Tensor, switch: torch.Tensor) -> torch.Tensor:
    """score [D+1, n] (outcome of each fixed delay), switch [n] -> the score of each case's switch step."""
    return score.gather(0, switch.clamp(max=score.shape[0] - 1).unsqueeze(0)).squeeze(0)


def tune(
    score: torch.Tensor,
    signal: torch.Tensor,
    train: list[int],
    taus: list[float],
    highs: list[int],
    higher: bool,
    low: int,
    lag: int,
) -> tuple[float, int]:
    """Best (tau, high) on the ``train`` prompts; score [P, D+1, n], signal [P, steps, n]."""
    best, arg = -1.0, (taus[0], highs[0])
    for high in highs:
        for tau in taus:
            total = torch.cat(
                [case_scores(score[p], switch_steps(signal[p], tau, higher, low, high, lag)) for p in train]
            ).mean()
            if float(total) > best + 1e-9:
                best, arg = float(total), (tau, high)
    return arg


def flatten_prompts(x: torch.Tensor, prompts: list[int]) -> torch.Tensor:
    """[P, K, n] -> [K, len(prompts) * n]: the chosen prompts' cases side by side."""
    return torch.cat([x[p] for p in prompts], dim=-1)


def switch_steps_many(
    signal: torch.Tensor, taus: torch.Tensor, higher: bool, low: int, high: int, lag: int
) -> torch.Tensor:
    """`switch_steps` for many thresholds at once: signal [steps, n], taus [T] -> switch steps [T, n]."""
    steps, n = signal.shape
    if lag:
        signal = torch.cat([torch.full_like(signal[:lag], float("nan")), signal[:-lag]])
    sig = signal[low:high]  # [W, n]
    t = taus.to(sig.dtype)[:, None, None]
    passed = (sig[None] >= t) if higher else (sig[None] <= t)
    passed &= ~torch.isnan(sig)[None]
    idx = torch.arange(low, high)[None, :, None].expand_as(passed)
    return torch.where(passed, idx, torch.full_like(idx, high)).min(dim=1).values


def windows(lows: list[int], spans: list[int], steps: int) -> list[tuple[int, int]]:
    """Every window [low, high) with high = low + span, cut at ``steps``; empty ones left out."""
    return [(low, high) for low in lows for high in sorted({min(low + span, steps) for span in spans}) if high > low]


def mean_scores(score: torch.Tensor, switch: torch.Tensor) -> torch.Tensor:
    """score [D+1, n], switch steps [T, n] (one row per threshold) -> mean score of each row [T]."""
    return score.gather(0, switch.clamp(max=score.shape[0] - 1)).mean(dim=1)


def tune_window(
    score: torch.Tensor,
    signal: torch.Tensor,
    train: list[int],
    taus: list[float],
    lows: list[int],
    spans: list[int],
    higher: bool,
    lag: int,
    kind: str,
    max_extra: float,
) -> tuple[float, int, int]:
    """Best (tau, low, high) on the ``train`` prompts among windows [low, low + span) whose extra model work
    (evaluations per image, `extra_evaluations`) is at most ``max_extra`` on average; score [P, D+1, n],
    signal [P, steps, n]. Falls back to the cheapest choice when none fits."""
    sc, sig = flatten_prompts(score, train), flatten_prompts(signal, train)
    steps = sig.shape[0]
    tt = torch.tensor(taus)
    best, arg = -1.0, None
    cheapest, cheap_arg = float("inf"), (taus[0], lows[0], lows[0] + 1)
    for low, high in windows(lows, spans, steps):
        st = switch_steps_many(sig, tt, higher, low, high, lag)  # [T, n]
        extra = extra_evaluations(st, low, high, kind).mean(dim=1)  # [T]
        totals = mean_scores(sc, st)  # [T]
        i_cheap = int(extra.argmin())
        if float(extra[i_cheap]) < cheapest:
            cheapest, cheap_arg = float(extra[i_cheap]), (taus[i_cheap], low, high)
        ok = extra <= max_extra + 1e-9
        if not ok.any():
            continue
        masked = torch.where(ok, totals, torch.full_like(totals, -1.0))
        i = int(masked.argmax())
        if float(masked[i]) > best + 1e-9:
            best, arg = float(masked[i]), (taus[i], low, high)
    return arg if arg is not None else cheap_arg


def forecast_auc(signal: torch.Tensor, present: torch.Tensor) -> float:
    """How well one step's signal forecasts the accessory: ROC AUC of ``signal`` [n] against ``present`` [n]
    (bool: drawn without the negative prompt). 1: every image that draws it scores higher than every image that
    does not; 0.5: no better than chance; 0: perfectly reversed. NaN when one class is empty or the signal is not
    finite. Ties count one half."""
    s, y = signal.double().flatten(), present.bool().flatten()
    if not bool(torch.isfinite(s).all()) or bool(y.all()) or not bool(y.any()):
        return float("nan")
    pos, neg = s[y][:, None], s[~y][None, :]
    return float((pos > neg).double().mean() + 0.5 * (pos == neg).double().mean())


def worst_group_window(
    groups: list[tuple[torch.Tensor, torch.Tensor]],
    taus: list[float],
    lows: list[int],
    spans: list[int],
    max_extra: float,
) -> tuple[float, int, int]:
    """The (tau, low, high) that generalises across groups (e.g. accessories): it maximises the lowest of the
    groups' mean scores, each divided by that group's best fixed delay, among windows whose extra model work
    (lag 0, the negative evaluated at each step until the switch) is at most ``max_extra`` evaluations per image
    on average in every group. ``groups``: (score [D+1, n], signal [steps, n]) per group; a higher
    signal switches. Ties go to the earlier, then narrower window, then the higher threshold."""
    tt = torch.tensor(taus)
    steps = groups[0][1].shape[0]
    best, arg = -1.0, None
    for low, high in windows(lows, spans, steps):
        worst = torch.full((len(taus),), float("inf"))
        dearest = torch.zeros(len(taus))
        for sc, sig in groups:
            st = switch_steps_many(sig, tt, True, low, high, 0)  # [T, n]
            dearest = torch.maximum(dearest, extra_evaluations(st, low, high, "every").mean(dim=1))
            worst = torch.minimum(worst, mean_scores(sc, st) / sc.mean(dim=1).max())
        worst = torch.where(dearest <= max_extra + 1e-9, worst, torch.full_like(worst, -1.0))
        top = float(worst.max())
        if top > best + 1e-9:
            # the highest threshold among the ties: the fewest images switched on a marginal reading
            i = max(torch.nonzero(worst >= top - 1e-9).flatten().tolist(), key=lambda j: taus[j])
            best, arg = top, (taus[i], low, high)
    if arg is None:
        raise ValueError(f"no window costs at most {max_extra} extra evaluations per image")
    return arg
