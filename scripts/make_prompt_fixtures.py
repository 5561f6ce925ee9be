#!/usr/bin/env python3
"""Build the prompt fixtures under Tests/Fixtures/prompts/: A1111-weighted prompts, BREAK, a
120-token prompt, clip skip and textual-inversion embeddings, rendered on the tiny test model
(Tests/Fixtures/models/tiny-sd) with diffusers.

Run by hand with the reference virtualenv:  /work/venv/bin/python scripts/make_prompt_fixtures.py

Every image: DDIM, 5 steps, guidance 7.5, seed 42 (torch.manual_seed), the tiny model's own size.

A1111 references ("a1111" kind): the prompt and negative prompt are turned into context vectors by
a port of A1111's algorithm — parse_attention and tokenize_line from
scripts/a1111_prompt_reference.py (a port of prompt_parser.py / sd_hijack_clip.py), then, per
77-token chunk, the text encoder (embedding vectors written over the token embeddings at their
slots, as A1111's EmbeddingsWithFixes does; clip skip N = hidden_states[-N] then the final layer
norm, as FrozenCLIPEmbedderWithCustomWords.encode_with_transformers), multiplied by the token
weights and rescaled to the chunk's original mean (emphasis "Original"), chunks concatenated —
and fed to diffusers as prompt_embeds / negative_prompt_embeds. When the two have different chunk
counts, A1111 (without pad_cond_uncond) runs the U-Net on each separately; diffusers' pipeline
cannot take that, so the same DDIM loop is written out here with diffusers' UNet and scheduler.

diffusers references ("diffusers" kind): the pipeline alone — clip skip via its encode_prompt's
clip_skip = N − 1 (called for the negative prompt too: diffusers' pipeline applies clip_skip to the
prompt only, A1111 and ldm to both), embeddings via load_textual_inversion(path, token=NAME).

Files: <case>.png per case, manifest.json (each case: prompt, negative, the ldm arguments, kind),
shapestyle.pt (A1111: string_to_param {"*": [2, 32]}), shapestyle.safetensors (emb_params, the
same vectors), versions.json.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import diffusers
import transformers
from diffusers import DDIMScheduler, StableDiffusionPipeline

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from a1111_prompt_reference import EmbeddingIndex, parse_attention, tokenize_line  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, ".."))
TINY = os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-sd")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "prompts")
STEPS, GUIDANCE, SEED = 5, 7.5, 42
EMBEDDING = "shapestyle"


def load():
    pipe = StableDiffusionPipeline.from_pretrained(TINY, safety_checker=None, requires_safety_checker=False,
                                                   torch_dtype=torch.float32)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_png(array, name):
    Image.fromarray((array * 255).round().astype(np.uint8)).save(os.path.join(OUT, name + ".png"))


class A1111Encoder:
    """The port: prompt text → [1, 77·chunks, D] as A1111 computes it."""

    def __init__(self, pipe, embeddings):
        self.pipe = pipe
        tok = pipe.tokenizer
        self.tokenize = lambda texts: tok(texts, truncation=False, add_special_tokens=False)["input_ids"]
        self.comma = tok.get_vocab().get(",</w>", None)
        self.embeddings = embeddings  # name -> tensor [n, D]
        self.index = EmbeddingIndex([(n, self.tokenize([n])[0], v.shape[0]) for n, v in embeddings.items()])

    def chunk_vectors(self, ids, fixes, mults, clip_skip):
        te = self.pipe.text_encoder
        model = getattr(te, "text_model", te)  # transformers 5 flattens text_model
        token_embedding = model.embeddings.token_embedding

        def write_fixes(module, inputs, output):
            output = output.clone()
            for offset, (name, count) in fixes:
                vec = self.embeddings[name]
                n = min(output.shape[1] - offset - 1, count)
                output[0, offset + 1: offset + 1 + n] = vec[:n]
            return output

        handle = token_embedding.register_forward_hook(write_fixes)
        try:
            out = te(torch.tensor([ids]), output_hidden_states=True)
        finally:
            handle.remove()
        if clip_skip <= 1:
            z = out.last_hidden_state
        else:
            z = model.final_layer_norm(out.hidden_states[-clip_skip])
        m = torch.tensor(mults, dtype=torch.float32)
        original_mean = z.mean()
        z = z * m.reshape(1, -1, 1).expand(z.shape)
        new_mean = z.mean()
        return z * (original_mean / new_mean)

    def __call__(self, prompt, clip_skip=1):
        tok = self.pipe.tokenizer
        chunks, _ = tokenize_line(parse_attention(prompt), self.tokenize, self.index, tok.bos_token_id,
                                  tok.eos_token_id, tok.pad_token_id, self.comma)
        with torch.no_grad():
            return torch.cat([self.chunk_vectors(ids, fixes, mults, clip_skip) for ids, mults, fixes in chunks], dim=1)


def separate_passes(pipe, cond, uncond):
    """diffusers' DDIM txt2img loop with the U-Net run on uncond and cond separately."""
    g = torch.manual_seed(SEED)
    unet, sched = pipe.unet, pipe.scheduler
    size = unet.config.sample_size
    latents = torch.randn((1, unet.config.in_channels, size, size), generator=g) * sched.init_noise_sigma
    sched.set_timesteps(STEPS)
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.scale_model_input(latents, t)
            u = unet(x, t, encoder_hidden_states=uncond).sample
            c = unet(x, t, encoder_hidden_states=cond).sample
            latents = sched.step(u + GUIDANCE * (c - u), t, latents, generator=g).prev_sample
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()[0]


def main():
    torch.set_num_threads(1)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    pipe = load()
    width = pipe.text_encoder.config.hidden_size
    vectors = torch.randn(2, width, generator=torch.Generator().manual_seed(11)) * 0.5
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vectors}, "name": EMBEDDING, "step": 1000,
                "sd_checkpoint": None, "sd_checkpoint_name": None}, os.path.join(OUT, EMBEDDING + ".pt"))
    save_file({"emb_params": vectors}, os.path.join(OUT, EMBEDDING + ".safetensors"))
    encode = A1111Encoder(pipe, {EMBEDDING: vectors})

    # A prompt of about 120 tokens (this tokenizer's small vocabulary splits words into pieces).
    phrases = ["a red circle", "above a blue square", "on a dark background", "small green triangle", "yellow"]
    long_prompt = ""
    while len(pipe.tokenizer(long_prompt, add_special_tokens=False)["input_ids"]) < 120:
        long_prompt += ("" if not long_prompt else ", ") + phrases[len(long_prompt) % len(phrases)]
    cases = [
        # (name, prompt, negative, ldm extra arguments, kind, clip skip)
        ("weighted", "a ((red circle:1.4)) above [[a blue]] square, \\(dark\\) background", "(green:0.8) (yellow)", [], "a1111", 1),
        ("weighted-clipskip2", "a ((red circle:1.4)) above [[a blue]] square", "green", ["--clip-skip", "2"], "a1111", 2),
        ("break", "a red circle BREAK a blue square", "green BREAK yellow", [], "a1111", 1),
        ("long-120", long_prompt, "green", [], "a1111", 1),
        ("embedding-weighted", f"a ({EMBEDDING}:1.3) circle above a blue square", "green", [], "a1111-embedding", 1),
        ("plain-clipskip2", "a red circle above a blue square", "green", ["--plain-prompt", "--clip-skip", "2"], "diffusers", 2),
        ("embedding", f"a {EMBEDDING} circle above a blue square", "green", [], "diffusers-embedding", 1),
    ]
    manifest = []
    for name, prompt, negative, extra, kind, clip_skip in cases:
        count = len(pipe.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if kind.startswith("a1111"):
            cond, uncond = encode(prompt, clip_skip), encode(negative, clip_skip)
            if cond.shape == uncond.shape:
                image = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=STEPS,
                             guidance_scale=GUIDANCE, generator=torch.manual_seed(SEED), output_type="np").images[0]
            else:
                image = separate_passes(pipe, cond, uncond)
            shapes = [list(cond.shape), list(uncond.shape)]
        else:
            p = load()
            # diffusers 0.42.1's clip_skip reads text_encoder.text_model, which transformers 5 no longer
            # has (the model is its own text transformer): point the name at the model itself.
            if not hasattr(p.text_encoder, "text_model"):
                object.__setattr__(p.text_encoder, "text_model", p.text_encoder)
            if kind == "diffusers-embedding":
                p.load_textual_inversion(os.path.join(OUT, EMBEDDING + ".pt"), token=EMBEDDING)
            if clip_skip > 1:
                # diffusers applies clip_skip to the prompt only, A1111 to both: encode each as a prompt
                # with diffusers' own encode_prompt, then pass both.
                cond = p.encode_prompt(prompt, "cpu", 1, False, clip_skip=clip_skip - 1)[0]
                uncond = p.encode_prompt(negative, "cpu", 1, False, clip_skip=clip_skip - 1)[0]
                image = p(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                          generator=torch.manual_seed(SEED), output_type="np").images[0]
            else:
                image = p(prompt, negative_prompt=negative, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                          generator=torch.manual_seed(SEED), output_type="np").images[0]
            shapes = None
        save_png(image, name)
        manifest.append({"name": name, "prompt": prompt, "negative_prompt": negative, "arguments": extra,
                         "kind": kind, "prompt_tokens": count, "context_shapes": shapes})
        print("wrote", name, shapes or "", f"{count} tokens")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"model": "Tests/Fixtures/models/tiny-sd", "sampler": "ddim", "steps": STEPS, "guidance": GUIDANCE,
                   "seed": SEED, "embedding": EMBEDDING, "cases": manifest}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "diffusers": diffusers.__version__,
                   "transformers": transformers.__version__, "command": "python scripts/make_prompt_fixtures.py"}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
