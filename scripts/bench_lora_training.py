#!/usr/bin/env python3
"""LoRA training step of Stable Diffusion 1.x at 512×512, batch 1: PyTorch's side, run by hand
beside `ldm train lora` (never in CI). Random weights: no model can be downloaded here.

    /work/venv/bin/python scripts/bench_lora_training.py --make-model /tmp/sd15-random --make-dataset /tmp/lora-pictures
    /work/venv/bin/python scripts/bench_lora_training.py --model /tmp/sd15-random --dataset /tmp/lora-pictures --threads 2
    /usr/bin/time -v .build/release/ldm train lora --model /tmp/sd15-random --dataset /tmp/lora-pictures \
        --run /tmp/lora-bench --output /tmp/lora-bench.safetensors --targets unet --rank 4 --batch 1 --size 512 --steps 4

The step, as diffusers' train_text_to_image_lora.py takes it: the frozen VAE encodes the picture
(latent sample × 0.18215), the frozen text encoder encodes the caption, noise and a timestep are
drawn, the U-Net with peft LoRA (rank r, alpha r) on its attention projections to_q, to_k, to_v,
to_out.0 predicts the noise, MSE, backward, AdamW. Prints the best seconds per step of --steps
after one warm-up step and the peak RSS.
"""
import argparse
import os
import platform
import random
import resource
import time

import numpy as np
import torch
from PIL import Image

import diffusers
import peft
import transformers
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

FAMILY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Checkpoints", "families", "sd1")


def make_model(path):
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu"))
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(FAMILY, "tokenizer"))
    scheduler = DDPMScheduler.from_pretrained(os.path.join(FAMILY, "scheduler"))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(path, safe_serialization=True)
    print("wrote", path)


def make_dataset(path, count=4):
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        # Smooth colour fields: a picture-like spectrum, not white noise.
        small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((512, 512), Image.BICUBIC).save(os.path.join(path, f"{i:03d}.png"))
        with open(os.path.join(path, f"{i:03d}.txt"), "w") as f:
            f.write(f"a photo of a colourful pattern number {i}")
    print("wrote", path)


def bench(model, dataset, steps, rank):
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    text = CLIPTextModel.from_pretrained(model, subfolder="text_encoder", torch_dtype=torch.float32).eval()
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=torch.float32).eval()
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=torch.float32)
    scheduler = DDPMScheduler.from_pretrained(model, subfolder="scheduler")
    for m in (text, vae, unet):
        m.requires_grad_(False)
    unet.add_adapter(peft.LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                     target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    trained = [p for p in unet.parameters() if p.requires_grad]
    print(f"LoRA parameters: {sum(p.numel() for p in trained):,} in {len(trained)} tensors")
    optimizer = torch.optim.AdamW(trained, lr=1e-4)
    names = sorted(f for f in os.listdir(dataset) if f.endswith(".png"))
    pictures = [torch.from_numpy(np.asarray(Image.open(os.path.join(dataset, n)).convert("RGB"), dtype=np.float32) / 127.5 - 1)
                .permute(2, 0, 1)[None] for n in names]
    captions = [open(os.path.join(dataset, n[:-4] + ".txt")).read().strip() for n in names]
    unet.train()

    def step(i):
        x = pictures[i % len(pictures)]
        ids = tokenizer(captions[i % len(captions)], padding="max_length", max_length=77, truncation=True,
                        return_tensors="pt").input_ids
        with torch.no_grad():
            latents = vae.encode(x).latent_dist.sample() * vae.config.scaling_factor
            context = text(ids)[0]
        noise = torch.randn_like(latents)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (1,))
        noisy = scheduler.add_noise(latents, noise, t)
        pred = unet(noisy, t, context).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step(0)
    times = []
    for i in range(1, steps + 1):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"PyTorch {torch.__version__}, diffusers {diffusers.__version__}, peft {peft.__version__}, "
          f"transformers {transformers.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"LoRA step SD1.x 512² batch 1 rank {rank}: best {min(times):.2f} s, mean {sum(times) / len(times):.2f} s "
          f"over {steps} steps; peak RSS {peak:.2f} GiB")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--make-model")
    p.add_argument("--make-dataset")
    p.add_argument("--model")
    p.add_argument("--dataset")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    random.seed(0)
    torch.manual_seed(0)
    if a.make_model:
        make_model(a.make_model)
    if a.make_dataset:
        make_dataset(a.make_dataset)
    if a.model and a.dataset:
        bench(a.model, a.dataset, a.steps, a.rank)


if __name__ == "__main__":
    main()
