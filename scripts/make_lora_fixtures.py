#!/usr/bin/env python3
"""Build the LoRA fixtures under Tests/Fixtures/lora/ for the tiny test model (Tests/Fixtures/models/tiny-sd).

Run by hand with the reference virtualenv:  /work/venv/bin/python scripts/make_lora_fixtures.py

Files:
  kohya.safetensors  kohya form, diffusers-style U-Net names: attention q/k/v/out of one transformer,
                     a LoCon update of a resnet's 3x3 conv1 (down [r, in, 3, 3], up [out, r, 1, 1]),
                     the time embedding's linear_1, text-encoder q_proj/v_proj; rank 4 or 2, each
                     module its own alpha (mixed: 1, 2, 4, 8)
  peft.safetensors   diffusers/peft form (unet.…lora_A/lora_B), rank 2, lora_alpha 4 in the
                     lora_adapter_metadata header, with alpha_pattern giving one module alpha 1
References (5 steps DDIM, seed 42, guidance 7.5, the pipelines fixtures' prompt):
  kohya-w08.png, peft-w08.png, both-w08.png: W + 0.8 · alpha/rank · up·down per module (kohya's
  formula), fused into the weights in float32, then diffusers' StableDiffusionPipeline.
The script also loads each file with diffusers' load_lora_weights + fuse_lora(lora_scale=0.8) and
prints the largest difference to the formula's weights (diffusers' own reading, for the record).
"""
import json
import os
import shutil

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import diffusers
from diffusers import DDIMScheduler, StableDiffusionPipeline

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TINY = os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-sd")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "lora")
PROMPT = "a red circle above a blue square"
NEGATIVE = "green"


def load():
    pipe = StableDiffusionPipeline.from_pretrained(TINY, safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def te_key(k):
    return k if k.startswith("text_model.") else "text_model." + k


def main():
    torch.set_num_threads(1)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    g = torch.Generator().manual_seed(7)
    pipe = load()
    unet = dict(pipe.unet.named_parameters())
    te = {te_key(k): v for k, v in pipe.text_encoder.named_parameters()}
    attn = "down_blocks.0.attentions.0.transformer_blocks.0.attn1."
    kohya_modules = [  # (component, weight name, rank, alpha)
        ("unet", attn + "to_q.weight", 4, 1.0), ("unet", attn + "to_k.weight", 4, 2.0),
        ("unet", attn + "to_v.weight", 2, 8.0), ("unet", attn + "to_out.0.weight", 4, 4.0),
        ("unet", "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", 2, 2.0),
        ("unet", "down_blocks.1.resnets.0.conv1.weight", 4, 2.0),        # LoCon 3x3
        ("unet", "time_embedding.linear_1.weight", 2, 1.0),
        ("text_encoder", "text_model.encoder.layers.0.self_attn.q_proj.weight", 4, 2.0),
        ("text_encoder", "text_model.encoder.layers.1.self_attn.v_proj.weight", 2, 4.0),
    ]
    kohya, updates = {}, {}
    for comp, name, r, alpha in kohya_modules:
        w = (unet if comp == "unet" else te)[name]
        out, inner_shape = w.shape[0], w.shape[1:]
        down = torch.randn((r,) + tuple(inner_shape), generator=g) * 0.3
        up = torch.randn(out, r, *([1, 1] if w.ndim == 4 else []), generator=g) * 0.3
        base = ("lora_unet_" if comp == "unet" else "lora_te_") + name[: -len(".weight")].replace(".", "_")
        kohya[base + ".lora_down.weight"], kohya[base + ".lora_up.weight"] = down, up
        kohya[base + ".alpha"] = torch.tensor(alpha)
        delta = (alpha / r) * (up.reshape(out, r) @ down.reshape(r, -1)).reshape(w.shape)
        updates.setdefault("kohya", []).append((comp, name, delta))
    save_file(kohya, os.path.join(OUT, "kohya.safetensors"), metadata={"ss_network_module": "networks.lora"})

    peft_modules = ["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
                    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_v",
                    "mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0"]
    peft, r, lora_alpha = {}, 2, 4.0
    pattern = {"mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0": 1.0}
    for m in peft_modules:
        w = unet[m + ".weight"]
        a = torch.randn(r, w.shape[1], generator=g) * 0.3
        b = torch.randn(w.shape[0], r, generator=g) * 0.3
        peft[f"unet.{m}.lora_A.weight"], peft[f"unet.{m}.lora_B.weight"] = a, b
        alpha = pattern.get(m, lora_alpha)
        updates.setdefault("peft", []).append(("unet", m + ".weight", (alpha / r) * (b @ a)))
    meta = {"r": r, "lora_alpha": lora_alpha, "alpha_pattern": pattern, "target_modules": ["to_q", "to_v", "to_out.0"]}
    save_file(peft, os.path.join(OUT, "peft.safetensors"), metadata={"format": "pt", "lora_adapter_metadata": json.dumps(meta)})

    versions = {"torch": torch.__version__, "diffusers": diffusers.__version__, "command": "python scripts/make_lora_fixtures.py"}
    for label, parts in [("kohya-w08", ["kohya"]), ("peft-w08", ["peft"]), ("both-w08", ["kohya", "peft"])]:
        p = load()
        params = {"unet": dict(p.unet.named_parameters()), "text_encoder": {te_key(k): v for k, v in p.text_encoder.named_parameters()}}
        with torch.no_grad():
            for part in parts:
                for comp, name, delta in updates[part]:
                    params[comp][name].add_(0.8 * delta)
        out = p(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=5, guidance_scale=7.5,
                generator=torch.manual_seed(42), output_type="np").images[0]
        Image.fromarray((out * 255).round().astype(np.uint8)).save(os.path.join(OUT, label + ".png"))
        print("wrote", label)
    # diffusers' own reading, for the record.
    for part in ("kohya", "peft"):
        p = load()
        try:
            p.load_lora_weights(os.path.join(OUT, part + ".safetensors"))
            p.fuse_lora(lora_scale=0.8)
            p.unload_lora_weights()
            ref = load()
            worst = 0.0
            for comp in ("unet", "text_encoder"):
                got = {te_key(k) if comp == "text_encoder" else k: v for k, v in getattr(p, comp).named_parameters()}
                base = {te_key(k) if comp == "text_encoder" else k: v for k, v in getattr(ref, comp).named_parameters()}
                want = {k: v.detach().clone() for k, v in base.items()}
                for c, name, delta in updates[part]:
                    if c == comp:
                        want[name] += 0.8 * delta
                for k in want:
                    worst = max(worst, (got[k] - want[k]).abs().max().item())
            print(f"diffusers load_lora_weights + fuse_lora(0.8) on {part}: largest weight difference to the formula {worst:.3g}")
            versions[f"diffusers_{part}_max_weight_difference"] = worst
        except Exception as e:  # noqa: BLE001
            print(f"diffusers could not load {part}: {e}")
            versions[f"diffusers_{part}_error"] = str(e)[:200]
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump(versions, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
