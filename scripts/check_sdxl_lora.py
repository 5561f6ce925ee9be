#!/usr/bin/env python3
"""Checks by hand that diffusers reads an SDXL LoRA written by `ldm train lora` as ldm does:

    /work/venv/bin/python scripts/check_sdxl_lora.py MODEL_DIR LORA.safetensors

MODEL_DIR is a diffusers SDXL folder (e.g. Tests/Fixtures/models/tiny-sdxl), LORA a kohya file
trained on it (`ldm train lora --model MODEL_DIR …`, U-Net targets, module names in the LDM
layout that kohya's SDXL scripts write). diffusers' load_lora_weights + fuse_lora (scale 1) must
change every U-Net weight the file names by kohya's formula, W += alpha/rank * up @ down, and no
other weight. Prints the worst difference and the number of modules; exits 1 on a mismatch.
"""
import sys

import torch
from safetensors.torch import load_file

import diffusers
from diffusers import StableDiffusionXLPipeline


def main():
    model, lora = sys.argv[1], sys.argv[2]
    print(f"diffusers {diffusers.__version__}, torch {torch.__version__}")
    pipe = StableDiffusionXLPipeline.from_pretrained(model, torch_dtype=torch.float32)
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    pipe.load_lora_weights(lora)
    pipe.fuse_lora(lora_scale=1.0)
    pipe.unload_lora_weights()
    after = pipe.unet.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    tensors = load_file(lora)
    modules = sorted({k[: -len(".lora_down.weight")] for k in tensors if k.endswith(".lora_down.weight")})
    # Each module's delta, matched to the weight that changed by exactly that delta.
    deltas = []
    for m in modules:
        down, up = tensors[m + ".lora_down.weight"].float(), tensors[m + ".lora_up.weight"].float()
        alpha = float(tensors[m + ".alpha"]) if m + ".alpha" in tensors else down.shape[0]
        d = (up.flatten(1) @ down.flatten(1)) * (alpha / down.shape[0])
        deltas.append((m, d))
    worst, matched = 0.0, set()
    for m, d in deltas:
        best = None
        for k in changed - matched:
            diff = (after[k] - before[k]).flatten(1) if after[k].dim() > 1 else None
            if diff is None or diff.shape != d.shape:
                continue
            err = (diff - d).abs().max().item()
            if best is None or err < best[1]:
                best = (k, err)
        if best is None:
            print(f"no weight changed for {m}")
            sys.exit(1)
        matched.add(best[0])
        worst = max(worst, best[1])
    print(f"{len(modules)} modules in the file, {len(changed)} U-Net weights changed, all matched; worst difference {worst:.3g}")
    sys.exit(0 if worst < 1e-5 and len(changed) == len(modules) else 1)


main()
