#!/usr/bin/env python3
"""Does a trained model use each kind of caption word? The denoising loss with the true caption
against the same caption with one attribute swapped, by noise level.

Run by hand with the reference virtualenv (diffusers, torch), never by tests or the product:

    ldm dataset shapes --count 400 --seed 7 --out /tmp/probe-set
    /work/venv/ref/bin/python scripts/probe_caption_loss.py MODEL_DIR /tmp/probe-set

For every image whose caption names a size, a position or a relation, it encodes the image with
the model's VAE, noises it at t = 999, 900, 700, 500 and 300 (the same noise for both captions),
and compares the v-prediction loss under the true caption and under a swapped one ("small" ↔
"large", "top left" ↔ "bottom right", "above" ↔ "below", …). A model that uses the attribute has
a lower loss with the true caption: the table prints both mean losses and the share of images
where the true caption wins (50% means the words are ignored).
"""

import glob
import os
import sys

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

SWAPS = {
    "size": [("small", "large"), ("medium", "small"), ("large", "small")],
    "position": [("top left", "bottom right"), ("bottom right", "top left"), ("top right", "bottom left"),
                 ("bottom left", "top right"), ("center", "top left")],
    "relation": [("left of", "right of"), ("right of", "left of"), ("above", "below"), ("below", "above")],
}
TIMESTEPS = (999, 900, 700, 500, 300)


def swapped(caption):
    """(kind, caption with the attribute swapped) or None for a caption without one."""
    for kind, pairs in SWAPS.items():
        for a, b in pairs:
            if f" {a} " in f" {caption} ":
                return kind, f" {caption} ".replace(f" {a} ", f" {b} ", 1).strip()
    return None


def main():
    folder, data = sys.argv[1], sys.argv[2]
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    unet, encoder, tokenizer, vae = pipe.unet, pipe.text_encoder, pipe.tokenizer, pipe.vae
    ab_all = pipe.scheduler.alphas_cumprod

    def context(prompts):
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                        return_tensors="pt").input_ids
        return encoder(ids)[0]

    items = {kind: [] for kind in SWAPS}
    for path in sorted(glob.glob(os.path.join(data, "*.png"))):
        caption = open(path[:-4] + ".txt").read().strip()
        s = swapped(caption)
        if s:
            items[s[0]].append((path, caption, s[1]))

    generator = torch.Generator().manual_seed(0)
    print(f"model {folder}; loss with the true / swapped caption, and the share of images where the true one is lower")
    with torch.no_grad():
        for kind, rows in items.items():
            if not rows:
                continue
            pixels = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32))
                                  .permute(2, 0, 1) / 127.5 - 1 for p, _, _ in rows])
            x0 = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
            ctx_true, ctx_swap = context([r[1] for r in rows]), context([r[2] for r in rows])
            cells = []
            for t in TIMESTEPS:
                ab = ab_all[t].float()
                eps = torch.randn(x0.shape, generator=generator)
                xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
                v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
                tt = torch.full((len(rows),), t)
                lt = ((unet(xt, tt, ctx_true).sample - v) ** 2).mean(dim=(1, 2, 3))
                ls = ((unet(xt, tt, ctx_swap).sample - v) ** 2).mean(dim=(1, 2, 3))
                cells.append(f"t={t}: {lt.mean():.4f}/{ls.mean():.4f} {100 * (lt < ls).float().mean():.0f}%")
            print(f"{kind:9s} ({len(rows):3d} images)  " + "  ".join(cells))


if __name__ == "__main__":
    main()
