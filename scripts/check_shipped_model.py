#!/usr/bin/env python3
"""Check by hand that diffusers loads the shipped model and draws the image `ldm` draws.

Run with the reference virtualenv (never needed by tests or the product), after building ldm:

    /work/venv/ref/bin/python scripts/check_shipped_model.py [--model Checkpoints] [--seeds 0 1 2]

For each prompt and seed it runs diffusers' StableDiffusionPipeline on the CPU in float32 with
`generator=torch.manual_seed(seed)`, the model's own scheduler and the steps and guidance of
Checkpoints/ldm_defaults.json, and `ldm txt2img --rng torch --seed seed` with the same settings;
it prints the largest and mean absolute difference of the two 8-bit images and the versions used.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

import diffusers
import transformers
from diffusers import StableDiffusionPipeline


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="Checkpoints")
    parser.add_argument("--ldm", default=".build/release/ldm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--prompts", nargs="+",
                        default=["a red circle above a blue square", "a large green triangle",
                                 "a yellow square on a dark background"])
    args = parser.parse_args()

    defaults = json.load(open(os.path.join(args.model, "ldm_defaults.json")))
    steps, guidance = defaults["steps"], defaults["guidance"]
    rescale = defaults.get("guidance_rescale", 0.0)
    torch.set_num_threads(2)
    pipe = StableDiffusionPipeline.from_pretrained(args.model, torch_dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    print(f"diffusers {diffusers.__version__}, transformers {transformers.__version__}, torch {torch.__version__}")
    print(f"scheduler {type(pipe.scheduler).__name__}, {steps} steps, guidance {guidance}, rescale {rescale}")
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        for prompt in args.prompts:
            for seed in args.seeds:
                ref = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, guidance_rescale=rescale,
                           generator=torch.manual_seed(seed), output_type="np").images[0]
                ref = (ref * 255).round().clip(0, 255).astype(np.int32)
                out = os.path.join(tmp, "ldm.png")
                subprocess.run([args.ldm, "txt2img", prompt, "--model", args.model, "--rng", "torch",
                                "--seed", str(seed), "-o", out], check=True, capture_output=True)
                ours = np.asarray(Image.open(out).convert("RGB"), dtype=np.int32)
                diff = np.abs(ours - ref)
                worst = max(worst, int(diff.max()))
                print(f"{prompt!r} seed {seed}: max |Δ| {diff.max()}/255, mean {diff.mean():.4f}")
    print(f"largest difference over all images: {worst}/255")
    return 0


if __name__ == "__main__":
    sys.exit(main())
