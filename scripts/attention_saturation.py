#!/usr/bin/env python3
"""How saturated a trained U-Net's attention softmaxes are, and a one-off repair for a run.

Run by hand with the reference virtualenv (diffusers, torch, safetensors), never by tests or the
product:

    /work/venv/ref/bin/python scripts/attention_saturation.py measure MODEL_DIR
    /work/venv/ref/bin/python scripts/attention_saturation.py rescale CHECKPOINT_DIR TEMPLATE_MODEL_DIR [GAP]

`measure` runs the U-Net once at t = 900 on seeded noise with the prompt "a red circle in the top
left" and prints, per attention layer (self-attention attn1 and cross-attention attn2): the mean
gap between the largest and the median logit, the softmax's entropy in nats (uniform: ln 32 =
3.47 over the 32 text tokens; ln 64 = 4.16 and ln 16 = 2.77 over an 8×8 or 4×4 grid) and the mean
query and key norms per head. A gap of tens of nats means a one-hot softmax, which passes no
gradient to its queries and keys.

`rescale` repairs a run whose softmaxes saturated: it loads the raw weights of a training
checkpoint (model.safetensors) into a copy of TEMPLATE_MODEL_DIR (any exported model of the same
configuration), measures the gaps, and multiplies every layer's to_q weight, in both the weights
and their EMA, by min(1, GAP / gap) (at least 0.15), so the mean gap becomes about GAP (default 5)
while each position keeps its most-attended key. The manifest's sizes are rewritten. Continue the
run with `--qk-lr-scale` so the logits do not grow back.
"""

import json
import os
import shutil
import sys
import tempfile

import torch
from diffusers import StableDiffusionPipeline
from safetensors import safe_open
from safetensors.numpy import load_file, save_file


def measure(folder):
    """[(layer name, mean max−median logit, entropy, |q|, |k|)] for every attention layer."""
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    unet, encoder, tokenizer = pipe.unet, pipe.text_encoder, pipe.tokenizer
    ids = tokenizer(["a red circle in the top left"], padding="max_length", max_length=tokenizer.model_max_length,
                    return_tensors="pt").input_ids
    context = encoder(ids)[0].expand(4, -1, -1)
    rows = []

    class Probe:
        def __init__(self, name):
            self.name = name.split(".processor")[0]

        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
            source = hidden_states if encoder_hidden_states is None else encoder_hidden_states
            q = attn.head_to_batch_dim(attn.to_q(hidden_states))
            k = attn.head_to_batch_dim(attn.to_k(source))
            v = attn.head_to_batch_dim(attn.to_v(source))
            logits = torch.bmm(q, k.transpose(1, 2)) * attn.scale
            p = logits.softmax(-1)
            gap = (logits.max(-1).values - logits.median(-1).values).mean().item()
            entropy = -(p * (p + 1e-12).log()).sum(-1).mean().item()
            rows.append((self.name, gap, entropy, q.norm(dim=-1).mean().item(), k.norm(dim=-1).mean().item()))
            return attn.to_out[1](attn.to_out[0](attn.batch_to_head_dim(torch.bmm(p, v))))

    unet.set_attn_processor({name: Probe(name) for name in unet.attn_processors})
    torch.manual_seed(0)
    with torch.no_grad():
        unet(torch.randn(4, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size), 900, context)
    return rows


def rescale(checkpoint, template, target):
    model = os.path.join(checkpoint, "model.safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "model")
        shutil.copytree(template, folder)
        weights = load_file(model)
        save_file({k[5:]: v for k, v in weights.items() if k.startswith("unet.")},
                  os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors"))
        save_file({k[13:]: v for k, v in weights.items() if k.startswith("text_encoder.")},
                  os.path.join(folder, "text_encoder", "model.safetensors"))
        rows = measure(folder)
    factors = {f"unet.{name}.to_q.weight": min(1.0, max(0.15, target / gap)) for name, gap, _, _, _ in rows}
    for name in ("model.safetensors", "ema.safetensors"):
        path = os.path.join(checkpoint, name)
        with safe_open(path, "np") as f:
            metadata = f.metadata()
        tensors = load_file(path)
        for key, factor in factors.items():
            tensors[key] = (tensors[key] * factor).astype(tensors[key].dtype)
        save_file(tensors, path + ".tmp", metadata=metadata)
        os.replace(path + ".tmp", path)
    manifest_path = os.path.join(checkpoint, "manifest.json")
    manifest = json.load(open(manifest_path))
    for f in manifest["files"]:
        manifest["files"][f] = os.path.getsize(os.path.join(checkpoint, f))
    with open(manifest_path + ".tmp", "w") as out:
        json.dump(manifest, out)
    os.replace(manifest_path + ".tmp", manifest_path)
    for key, factor in factors.items():
        print(f"{key}: × {factor:.3f}")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "measure":
        print("layer                                                   gap  entropy   |q|    |k|")
        for name, gap, entropy, qn, kn in measure(sys.argv[2]):
            print(f"{name:54s} {gap:5.1f}  {entropy:5.2f}  {qn:5.1f}  {kn:5.1f}")
    elif len(sys.argv) >= 4 and sys.argv[1] == "rescale":
        rescale(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 5.0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
