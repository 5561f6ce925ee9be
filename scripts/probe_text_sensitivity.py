#!/usr/bin/env python3
"""How much a trained model's U-Net output depends on each kind of caption word, by noise level.

Run by hand with the reference virtualenv (diffusers, torch), never by tests or the product:

    /work/venv/ref/bin/python scripts/probe_text_sensitivity.py [MODEL_DIR]

For pairs of prompts that differ in one attribute (colour, background, size, position, and a
caption against the empty prompt) it feeds the same noise sample to the U-Net at t = 999, 800 and
500 and prints mean |output(a) − output(b)| / mean |output(a)|. An attribute the model has learned
changes the prediction, most of all at high t where the layout is decided; one it ignores gives
about 0.
"""

import sys

import torch
from diffusers import StableDiffusionPipeline

PAIRS = [("a red circle", "a blue circle"),
         ("a red circle on a dark background", "a red circle on a light background"),
         ("a large red circle", "a small red circle"),
         ("a red circle in the top left", "a red circle in the bottom right"),
         ("a red circle above a blue square", "a red circle below a blue square"),
         ("a red circle", "")]


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "Checkpoints"
    torch.set_num_threads(2)
    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    unet, encoder, tokenizer = pipe.unet, pipe.text_encoder, pipe.tokenizer

    def context(prompt):
        ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
        return encoder(ids)[0]

    torch.manual_seed(0)
    size = unet.config.sample_size
    x = torch.randn(4, unet.config.in_channels, size, size)
    with torch.no_grad():
        for a, b in PAIRS:
            ca, cb = context(a).expand(4, -1, -1), context(b).expand(4, -1, -1)
            cells = []
            for t in (999, 800, 500):
                oa, ob = unet(x, t, ca).sample, unet(x, t, cb).sample
                cells.append(f"t={t}: {((oa - ob).abs().mean() / oa.abs().mean()).item():.3f}")
            print(f"{a!r} vs {b!r}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
