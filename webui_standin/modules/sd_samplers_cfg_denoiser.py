"""Stand-in for modules/sd_samplers_cfg_denoiser.py (v1.10.1): classifier-free guidance around the model wrapper.

Facts modelled, per denoiser evaluation (``forward``), in this order:

1. an interrupted or skipped job raises InterruptedException; the refiner may be switched in (new conds);
2. the prompt schedules (prompt editing) are read at the evaluation count ``self.step``;
3. with ``mask_before_denoising`` the latent is blended with the init latent (through scripts' on_mask_blend);
4. the batch is laid out as: for each image one row per AND-subprompt, then one uncond row per image (and, for
   an InstructPix2Pix edit model, another block of rows for the image-only condition);
5. ``cfg_denoiser_callback`` gets (x, image_cond, sigma, sampling_step, sampling_steps, text_cond, text_uncond,
   denoiser) and may replace any of them;
6. the uncond rows are dropped when "skip early CFG" covers this fraction of evaluations, or for NGMS
   (s_min_uncond: below that sigma, on odd evaluations or every one with "s_min_uncond_all");
7. cond/uncond of different lengths are padded (``pad_cond_uncond_v0``: uncond's last row repeated or cut;
   ``pad_cond_uncond``: whole empty-prompt chunks);
8. the model runs on the whole batch (``batch_cond_uncond``) or image-batch-sized slices; cond and uncond of
   different lengths are evaluated separately; skipped uncond rows are filled with each image's first cond row;
9. ``cfg_denoised_callback`` gets (x_out, sampling_step, sampling_steps, inner_model); the guidance
   uncond + sum of weight * scale * (cond - uncond) follows (scale 1 when the uncond was skipped);
10. without mask_before_denoising the result is blended now; the preview latent is stored;
11. ``cfg_after_cfg_callback`` gets (denoised, sampling_step, sampling_steps) and may replace it; ``self.step``
    counts the evaluation.
"""

from __future__ import annotations

from typing import Any

import modules.shared as shared
import torch
from modules import prompt_parser, sd_samplers_common
from modules.script_callbacks import (
    AfterCFGCallbackParams,
    CFGDenoisedParams,
    CFGDenoiserParams,
    cfg_after_cfg_callback,
    cfg_denoised_callback,
    cfg_denoiser_callback,
)
from modules.shared import opts, state

fork_forward: Any = None
"""Set by a fork flavour of the stand-in (``fork_flavour.select``): ``fork_forward(denoiser, x, sigma, uncond, cond,
cond_scale, s_min_uncond, image_cond)`` replaces the body of ``CFGDenoiser.forward``. None for A1111."""


def catenate_conds(conds: list) -> Any:
    """Concatenates conditionings along the batch: tensors, or SDXL dicts key by key (into a plain dict)."""
    first = conds[0]
    if isinstance(first, dict):
        return {key: torch.cat([cond[key] for cond in conds]) for key in first}
    return torch.cat(conds)


def subscript_cond(cond: Any, a: int, b: int) -> Any:
    """Rows a:b of a conditioning (of every entry of an SDXL dict)."""
    if isinstance(cond, dict):
        return {key: value[a:b] for key, value in cond.items()}
    return cond[a:b]


def pad_cond(tensor: Any, repeats: int, empty: torch.Tensor) -> Any:
    """Appends ``repeats`` copies of the empty-prompt chunk (77 tokens) to every row; for an SDXL dict its
    "crossattn" entry is padded in place."""
    if isinstance(tensor, dict):
        tensor["crossattn"] = pad_cond(tensor["crossattn"], repeats, empty)
        return tensor
    padding = empty.repeat((tensor.shape[0], repeats, 1))
    return torch.cat([tensor, padding], axis=1)


class CFGDenoiser(torch.nn.Module):
    """Classifier-free guidance for one sampling pass; ``self.step`` counts its evaluations."""

    def __init__(self, sampler) -> None:
        super().__init__()
        self.sampler = sampler
        self.model_wrap = None
        self.p: Any = None
        # inpainting: the init latent, what to keep (mask) and what to repaint (nmask)
        self.init_latent = None
        self.mask = None
        self.nmask = None
        # NOTE: masking before denoising can cause the original latents to be oversmoothed
        self.mask_before_denoising = False
        self.steps: int | None = None
        """number of steps as specified by user in UI"""
        self.total_steps: int | None = None
        """expected number of calls to denoiser calculated from self.steps and specifics of the selected sampler"""
        self.step = 0
        self.image_cfg_scale = None
        self.padded_cond_uncond = False
        self.padded_cond_uncond_v0 = False
        self.cond_scale_miltiplier = 1.0  # (sic) the WebUI's spelling
        self.need_last_noise_uncond = False
        self.last_noise_uncond = None

    @property
    def inner_model(self):
        raise NotImplementedError()

    def combine_denoised(self, x_out, conds_list, uncond, cond_scale):
        """uncond + sum over each image's subprompts of weight * cond_scale * (cond - uncond)."""
        unconditional = x_out[-uncond.shape[0] :]
        guided = torch.clone(unconditional)
        for image, subprompts in enumerate(conds_list):
            base = unconditional[image]
            for row, weight in subprompts:
                guided[image] += (x_out[row] - base) * (weight * cond_scale)
        return guided

    def combine_denoised_for_edit_model(self, x_out, cond_scale):
        """InstructPix2Pix guidance over the (cond, image-only, uncond) blocks."""
        with_text, image_only, unconditional = x_out.chunk(3)
        text_part = cond_scale * (with_text - image_only)
        return unconditional + text_part + self.image_cfg_scale * (image_only - unconditional)

    def get_pred_x0(self, x_in, x_out, sigma):
        """The preview x0 of a model output (k-diffusion denoisers already predict it)."""
        return x_out

    def update_inner_model(self) -> None:
        """After a checkpoint switch: forget the wrapper and give the sampler the pass's new conds."""
        self.model_wrap = None
        cond, uncond = self.p.get_conds()
        self.sampler.sampler_extra_args.update(cond=cond, uncond=uncond)

    def pad_cond_uncond(self, cond, uncond):
        """Pads the shorter of cond/uncond with whole empty-prompt chunks to the other's length."""
        empty = shared.sd_model.cond_stage_model_empty_prompt
        chunks = (cond.shape[1] - uncond.shape[1]) // empty.shape[1]
        if chunks:
            self.padded_cond_uncond = True
            if chunks > 0:
                uncond = pad_cond(uncond, chunks, empty)
            else:
                cond = pad_cond(cond, -chunks, empty)
        return cond, uncond

    def pad_cond_uncond_v0(self, cond, uncond):
        """The older padding: uncond's last token row is repeated up to cond's length, or uncond is cut to it."""
        vectors = uncond["crossattn"] if isinstance(uncond, dict) else uncond
        length, wanted = vectors.shape[1], cond.shape[1]
        if length != wanted:
            self.padded_cond_uncond_v0 = True
            if length < wanted:
                vectors = torch.hstack([vectors, vectors[:, -1:].repeat([1, wanted - length, 1])])
            else:
                vectors = vectors[:, :wanted]
        if isinstance(uncond, dict):
            uncond["crossattn"] = vectors
            return cond, uncond
        return cond, vectors

    # --- the steps of forward ------------------------------------------------------------------------------------

    def _is_edit_model(self) -> bool:
        """An InstructPix2Pix model guided by image CFG (at image CFG scale 1 it samples like a normal model)."""
        scale = self.image_cfg_scale
        return shared.sd_model.cond_stage_key == "edit" and scale is not None and scale != 1.0

    def _blend(self, latent, sigma):
        """Keeps the init latent where the mask says so; scripts may change the result (on_mask_blend)."""
        blended = latent * self.nmask + self.init_latent * self.mask
        if self.p.scripts is None:
            return blended
        from modules import scripts

        args = scripts.MaskBlendArgs(
            latent, self.nmask, self.init_latent, self.mask, blended, denoiser=self, sigma=sigma
        )
        self.p.scripts.on_mask_blend(self.p, args)
        return args.blended_latent

    def _condition_maker(self, image_cond, uncond):
        """(function building the model's condition dict, the image conditioning of uncond rows)."""
        if shared.sd_model.model.conditioning_key == "crossattn-adm":
            return (lambda text, adm: {"c_crossattn": [text], "c_adm": adm}), torch.zeros_like(image_cond)
        if isinstance(uncond, dict):
            return (lambda text, concat: {**text, "c_concat": [concat]}), image_cond
        return (lambda text, concat: {"c_crossattn": [text], "c_concat": [concat]}), image_cond

    def _batch_layout(self, conds_list, is_edit, x, sigma, image_cond, image_uncond):
        """(x, sigma, image_cond) of the model batch: each image's row once per subprompt, then the uncond rows
        (and the image-only rows of an edit model)."""
        per_subprompt = [image for image, subprompts in enumerate(conds_list) for _ in subprompts]
        blocks = 2 if is_edit else 1
        x_in = torch.cat([x[per_subprompt], *[x] * blocks])
        sigma_in = torch.cat([sigma[per_subprompt], *[sigma] * blocks])
        image_tail = [image_uncond, torch.zeros_like(self.init_latent)] if is_edit else [image_uncond]
        image_cond_in = torch.cat([image_cond[per_subprompt], *image_tail])
        return x_in, sigma_in, image_cond_in

    def _skips_uncond(self, sigma, s_min_uncond, is_edit) -> bool:
        """Skip early CFG (by the fraction of evaluations done) or NGMS (below s_min_uncond); both are recorded."""
        recorded = self.p.extra_generation_params
        early = shared.opts.skip_early_cond
        if early != 0.0 and self.step / self.total_steps <= early:
            recorded["Skip Early CFG"] = early
            return True
        every = shared.opts.s_min_uncond_all
        if not (self.step % 2 or every) or is_edit or not (s_min_uncond > 0 and sigma[0] < s_min_uncond):
            return False
        recorded["NGMS"] = s_min_uncond
        if every:
            recorded["NGMS all steps"] = every
        return True

    def _padded(self, text, uncond):
        self.padded_cond_uncond = self.padded_cond_uncond_v0 = False
        if text.shape[1] != uncond.shape[1]:
            if shared.opts.pad_cond_uncond_v0:
                return self.pad_cond_uncond_v0(text, uncond)
            if shared.opts.pad_cond_uncond:
                return self.pad_cond_uncond(text, uncond)
        return text, uncond

    def _evaluate(self, x_in, sigma_in, image_cond_in, text, uncond, make, images, skip_uncond, is_edit):
        """The model's outputs for every row of the batch."""
        model = self.inner_model

        def run(a, b, cond):
            return model(x_in[a:b], sigma_in[a:b], cond=make(cond, image_cond_in[a:b]))

        if skip_uncond or text.shape[1] == uncond.shape[1]:
            if skip_uncond:
                cond_in = text
            else:
                cond_in = catenate_conds([text, uncond, uncond] if is_edit else [text, uncond])
            if shared.opts.batch_cond_uncond:
                return model(x_in, sigma_in, cond=make(cond_in, image_cond_in))
            x_out = torch.zeros_like(x_in)
            for a in range(0, x_out.shape[0], images):
                x_out[a : a + images] = run(a, a + images, subscript_cond(cond_in, a, a + images))
            return x_out

        # cond and uncond of different lengths (no padding): separate model calls (the uncond is never skipped here)
        x_out = torch.zeros_like(x_in)
        rows = text.shape[0]
        chunk = images * 2 if shared.opts.batch_cond_uncond else images
        for a in range(0, rows, chunk):
            b = min(a + chunk, rows)
            cond = torch.cat([text[a:b]], uncond) if is_edit else subscript_cond(text, a, b)
            x_out[a:b] = run(a, b, cond)
        n_uncond = uncond.shape[0]
        x_out[-n_uncond:] = run(-n_uncond, None, uncond)
        return x_out

    def _store_preview(self, x_in, x_out, denoised, uncond, first_rows, sigma) -> None:
        """last_latent (the first subprompt's x0 of each image) and the preview the live-preview option asks for."""
        x_first = x_in[first_rows]
        self.sampler.last_latent = self.get_pred_x0(x_first, x_out[first_rows], sigma)
        content = opts.live_preview_content
        if content == "Prompt":
            preview = self.sampler.last_latent
        elif content == "Negative prompt":
            n_uncond = uncond.shape[0]
            preview = self.get_pred_x0(x_in[-n_uncond:], x_out[-n_uncond:], sigma)
        else:
            preview = self.get_pred_x0(x_first, denoised[first_rows], sigma)
        sd_samplers_common.store_latent(preview)

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        """One guided evaluation (see the module docstring for the order of events)."""
        if fork_forward is not None:
            return fork_forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond)
        if state.interrupted or state.skipped:
            raise sd_samplers_common.InterruptedException

        if sd_samplers_common.apply_refiner(self, sigma):
            cond = self.sampler.sampler_extra_args["cond"]
            uncond = self.sampler.sampler_extra_args["uncond"]

        is_edit = self._is_edit_model()
        conds_list, text = prompt_parser.reconstruct_multicond_batch(cond, self.step)
        uncond = prompt_parser.reconstruct_cond_batch(uncond, self.step)
        assert not is_edit or all(len(subprompts) == 1 for subprompts in conds_list), (
            "AND is not supported for InstructPix2Pix checkpoint (unless using Image CFG scale = 1.0)"
        )

        blend = self.mask is not None
        if blend and self.mask_before_denoising:
            x = self._blend(x, sigma)

        images = len(conds_list)
        make, image_uncond = self._condition_maker(image_cond, uncond)
        x_in, sigma_in, image_cond_in = self._batch_layout(conds_list, is_edit, x, sigma, image_cond, image_uncond)

        params = CFGDenoiserParams(
            x_in, image_cond_in, sigma_in, state.sampling_step, state.sampling_steps, text, uncond, self
        )
        cfg_denoiser_callback(params)
        x_in, image_cond_in, sigma_in = params.x, params.image_cond, params.sigma
        text, uncond = params.text_cond, params.text_uncond

        skip_uncond = self._skips_uncond(sigma, s_min_uncond, is_edit)
        if skip_uncond:
            x_in, sigma_in = x_in[:-images], sigma_in[:-images]

        text, uncond = self._padded(text, uncond)
        x_out = self._evaluate(x_in, sigma_in, image_cond_in, text, uncond, make, images, skip_uncond, is_edit)

        first_rows = [subprompts[0][0] for subprompts in conds_list]
        if skip_uncond:  # each image's first cond output stands in for its skipped uncond
            x_out = torch.cat([x_out, x_out[first_rows]])

        cfg_denoised_callback(CFGDenoisedParams(x_out, state.sampling_step, state.sampling_steps, self.inner_model))

        if self.need_last_noise_uncond:
            self.last_noise_uncond = torch.clone(x_out[-uncond.shape[0] :])

        scale = cond_scale * self.cond_scale_miltiplier
        if is_edit:
            denoised = self.combine_denoised_for_edit_model(x_out, scale)
        else:
            denoised = self.combine_denoised(x_out, conds_list, uncond, 1.0 if skip_uncond else scale)

        if blend and not self.mask_before_denoising:
            denoised = self._blend(denoised, sigma)

        self._store_preview(x_in, x_out, denoised, uncond, first_rows, sigma)

        after = AfterCFGCallbackParams(denoised, state.sampling_step, state.sampling_steps)
        cfg_after_cfg_callback(after)

        self.step += 1
        return after.x
