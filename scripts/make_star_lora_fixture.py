#!/usr/bin/env python3
"""Reference image of the shipped star LoRA (Checkpoints/loras/star.safetensors) on the shipped
model (Checkpoints/), made by diffusers: Tests/Fixtures/lora/star-s42.png.

Run by hand with the reference virtualenv:  /work/venv/bin/python scripts/make_star_lora_fixture.py [LORA]
(default LORA: Checkpoints/loras/star.safetensors, which the committed fixture used)

diffusers' load_lora_weights reads the file's U-Net modules (kohya names) and fuses them
(fuse_lora, scale 1); its kohya text-encoder conversion fails with transformers 5 ("Could not
automatically infer state dict type"), so the text-encoder modules are fused by kohya's formula,
W += alpha/rank * up @ down, on the module the key names. The script asserts that every U-Net
module diffusers fused equals the same formula, then renders the prompt with the model's own
scheduler, 20 steps, guidance 7.5, seed 42 (torch CPU generator), 64x64.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

import diffusers
import transformers
from diffusers import StableDiffusionPipeline

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL = os.path.join(ROOT, "Checkpoints")
LORA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(MODEL, "loras", "star.safetensors")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "lora")
PROMPT = "a red star left of a blue circle"


def main():
    torch.set_num_threads(2)
    pipe = StableDiffusionPipeline.from_pretrained(MODEL, safety_checker=None, requires_safety_checker=False,
                                                   torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    tensors = {k: v.float() for k, v in load_file(LORA).items()}
    before = {k: v.detach().clone() for k, v in pipe.unet.named_parameters()}
    pipe.load_lora_weights({k: v for k, v in tensors.items() if k.startswith("lora_unet_")})
    pipe.fuse_lora(lora_scale=1.0)
    pipe.unload_lora_weights()
    after = dict(pipe.unet.named_parameters())
    te = {(n if n.startswith("text_model.") else "text_model." + n).replace(".", "_"): p
          for n, p in pipe.text_encoder.named_parameters()}
    checked = 0
    for key in [k for k in tensors if k.endswith(".lora_down.weight")]:
        base = key[: -len(".lora_down.weight")]
        down, up = tensors[key], tensors[base + ".lora_up.weight"]
        rank = down.shape[0]
        delta = float(tensors[base + ".alpha"]) / rank * (up.flatten(1) @ down.flatten(1))
        if base.startswith("lora_unet_"):
            name = base[len("lora_unet_"):]
            hits = [n for n in after if n.replace(".", "_") == name + "_weight"]
            assert len(hits) == 1, base
            got = (after[hits[0]].detach() - before[hits[0]]).flatten(1)
            assert torch.allclose(got, delta.reshape(got.shape), atol=1e-5), base
            checked += 1
        else:
            p = te[base[len("lora_te_"):] + "_weight"]
            with torch.no_grad():
                p.add_(delta.reshape(p.shape))
    print(f"{checked} U-Net modules fused by diffusers equal the formula")
    g = torch.manual_seed(42)
    image = pipe(PROMPT, num_inference_steps=20, guidance_scale=7.5, generator=g, height=64, width=64).images[0]
    image.save(os.path.join(OUT, "star-s42.png"))
    print("wrote", os.path.join(OUT, "star-s42.png"))
    with open(os.path.join(OUT, "star-versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
                   "prompt": PROMPT, "steps": 20, "guidance": 7.5, "seed": 42, "size": 64,
                   "lora": os.path.relpath(LORA, ROOT), "command": "python scripts/make_star_lora_fixture.py"}, f, indent=1)


if __name__ == "__main__":
    main()
