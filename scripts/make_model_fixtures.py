#!/usr/bin/env python3
"""Build the tiny-model parity fixtures under Tests/Fixtures/models/.

Run by hand with the reference virtualenv (never needed by tests or the product):

    /work/venv/ref/bin/python scripts/make_model_fixtures.py [--out Tests/Fixtures/models] [--seed 0]

What it writes (see the README.md it generates for the full description):
  tokenizer files    a 600-merge CLIP BPE vocabulary in the exact CLIPTokenizer file format
  tiny-sd/           a full StableDiffusionPipeline folder (text encoder F16, UNet and VAE F32)
  tiny-sd2-inpaint-unet/unet/   a 9-channel SD2-style UNet (BF16 weights, linear projections)
  tiny-text-gelu/    an SD2-style text encoder (gelu, F32) and its tokenizer (pad "!")
  io/*.safetensors   inputs and reference outputs, computed in float32 on the CPU from the
                     weights exactly as stored (F16/BF16 weights are rounded before running)
  versions.json      library versions and the command line

All weights are random and perturbed so that no layer is an identity:
  norm weights (LayerNorm/GroupNorm)  1 + 0.2 * N(0,1)
  every bias (norm biases too)        0.2 * N(0,1)
  embeddings                          N(0, 0.5^2)
  every other weight                  N(0, 1/fan_in), fan_in = numel / shape[0]
"""

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import sys

import regex
import torch
from torch import nn

import diffusers
import safetensors
import transformers
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

NUM_MERGES = 600
MAX_LENGTH = 77

PROMPTS = [
    "a red circle above a blue square",
    "",
    "A Watercolor painting of 2 small houses, it's raining; the sky is grey & the trees don't move -- "
    "1234 birds fly over the hills while a cat sleeps near the fire, and the children play outside "
    "with their dogs until the evening comes and everyone goes home to eat soup.",
]


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------

def bytes_to_unicode():
    """CLIP's reversible byte -> printable unicode character table (GPT-2 construction).

    Printable bytes map to themselves; the remaining bytes map to 256, 257, ... in byte order.
    Returned as a dict in the table's canonical order (printable ranges first).
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def read_clip_merges(count):
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("open_clip is not installed in this environment (it ships the CLIP BPE file)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    # line 0 is the version header; then one merge ("a b") per line
    merges = [tuple(line.split()) for line in lines[1 : 1 + count]]
    assert all(len(m) == 2 for m in merges), "unexpected merge line"
    return merges, path


def build_vocab(merges):
    """The CLIP construction: 256 byte chars, the same with </w>, one per merge, then the two specials."""
    base = list(bytes_to_unicode().values())
    tokens = base + [c + "</w>" for c in base] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    assert len(set(tokens)) == len(tokens), "duplicate vocabulary entry"
    return {t: i for i, t in enumerate(tokens)}


def added_token(content):
    return {
        "__type": "AddedToken",
        "content": content,
        "lstrip": False,
        "normalized": True,
        "rstrip": False,
        "single_word": False,
    }


def write_tokenizer(folder, vocab, merges, pad_token):
    """Write vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json (SD1.x/2.x file layout)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    config = {
        "add_prefix_space": False,
        "bos_token": added_token("<|startoftext|>"),
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": added_token("<|endoftext|>"),
        "errors": "replace",
        "model_max_length": MAX_LENGTH,
        "pad_token": pad_token,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": added_token("<|endoftext|>"),
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    special = {
        "bos_token": {k: v for k, v in added_token("<|startoftext|>").items() if k != "__type"},
        "eos_token": {k: v for k, v in added_token("<|endoftext|>").items() if k != "__type"},
        "pad_token": pad_token,
        "unk_token": {k: v for k, v in added_token("<|endoftext|>").items() if k != "__type"},
    }
    with open(os.path.join(folder, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(special, f, indent=2, ensure_ascii=False)
        f.write("\n")


class ReferenceClipBPE:
    """An independent, plain-Python statement of CLIP's slow tokenizer (no ftfy) to cross-check.

    text -> NFC, whitespace runs collapsed to one space, stripped, lowercased
         -> split by the CLIP pattern -> each piece as UTF-8 bytes mapped through bytes_to_unicode
         -> BPE: the piece's last character carries "</w>"; repeatedly merge the adjacent pair with
            the lowest merge rank (all its non-overlapping left-to-right occurrences) until no pair
            is a known merge -> vocabulary ids.
    [bos] + ids[:max_length-2] + [eos], then padded with pad id to max_length.
    """

    PATTERN = regex.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
        regex.IGNORECASE,
    )

    def __init__(self, vocab, merges, pad_token):
        import unicodedata

        self.nfc = lambda s: unicodedata.normalize("NFC", s)
        self.vocab = vocab
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.byte_map = bytes_to_unicode()
        self.pad_id = vocab[pad_token]

    def bpe(self, piece):
        word = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, math.inf))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def encode(self, text, max_length=MAX_LENGTH):
        text = regex.sub(r"\s+", " ", self.nfc(text)).strip().lower()
        ids = []
        for piece in self.PATTERN.findall(text):
            mapped = "".join(self.byte_map[b] for b in piece.encode("utf-8"))
            ids.extend(self.vocab[t] for t in self.bpe(mapped))
        ids = [self.vocab["<|startoftext|>"]] + ids[: max_length - 2] + [self.vocab["<|endoftext|>"]]
        return ids + [self.pad_id] * (max_length - len(ids))


def tokenize(tokenizer, prompts):
    """Exactly what StableDiffusionPipeline.encode_prompt does."""
    return tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------

def perturb(model):
    """Re-draw every parameter so that no layer is an identity or zero map (see module docstring)."""
    norm_types = (nn.LayerNorm, nn.GroupNorm)
    with torch.no_grad():
        for module_name, module in model.named_modules():
            for name, p in module.named_parameters(recurse=False):
                full = f"{module_name}.{name}"
                if isinstance(module, norm_types):
                    if name == "weight":
                        p.copy_(1 + 0.2 * torch.randn_like(p))
                    elif name == "bias":
                        p.copy_(0.2 * torch.randn_like(p))
                    else:
                        raise SystemExit(f"unexpected norm parameter {full}")
                elif isinstance(module, nn.Embedding):
                    p.copy_(0.5 * torch.randn_like(p))
                elif isinstance(module, (nn.Linear, nn.Conv2d)):
                    if name == "bias":
                        p.copy_(0.2 * torch.randn_like(p))
                    elif name == "weight":
                        fan_in = p.numel() // p.shape[0]
                        p.copy_(torch.randn_like(p) / math.sqrt(fan_in))
                    else:
                        raise SystemExit(f"unexpected parameter {full}")
                else:
                    raise SystemExit(f"parameter {full} in unhandled module type {type(module).__name__}")


def prefix_text_keys(path):
    """Give a saved CLIPTextModel file the `text_model.` key prefix that SD1.x/2.x checkpoints (and
    transformers < 5) use. transformers 5.x writes the keys without it; it loads either form."""
    tensors = load_file(path)
    renamed = {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in tensors.items()}
    save_file(renamed, path, metadata={"format": "pt"})


def round_through(model, dtype):
    """Round the weights to `dtype` and back to float32, in place."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def count(model):
    return sum(p.numel() for p in model.parameters())


def check_dtype(path, dtype, prefix=""):
    tensors = load_file(path)
    dtypes = {t.dtype for t in tensors.values()}
    assert dtypes == {dtype}, f"{path}: dtypes {dtypes}, expected {dtype}"
    bad = [k for k in tensors if not k.startswith(prefix)]
    assert not bad, f"{path}: keys without the prefix {prefix!r}: {bad[:3]}"
    return len(tensors)


def max_rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


# --------------------------------------------------------------------------------------------
# Model configurations
# --------------------------------------------------------------------------------------------

def text_config(vocab, pad_token, act, layers):
    return CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        hidden_act=act,
        layer_norm_eps=1e-5,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab[pad_token],
        projection_dim=32,
    )


TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 3,
    up_block_types=["UpDecoderBlock2D"] * 3,
    block_out_channels=[16, 32, 32],
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=64,
    scaling_factor=0.18215,
)

TINY_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    block_out_channels=(16, 32, 32),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=8,
    norm_num_groups=8,
    flip_sin_to_cos=True,
    freq_shift=0,
)

TINY_INPAINT_UNET = dict(
    sample_size=16,
    in_channels=9,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    attention_head_dim=(2, 4),
    use_linear_projection=True,
    cross_attention_dim=32,
    norm_num_groups=8,
)

SD15_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    skip_prk_steps=True,
    steps_offset=1,
    set_alpha_to_one=False,
    clip_sample=False,
)

SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
    flip_sin_to_cos=True,
    freq_shift=0,
)

SD_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512],
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)

VIT_L14_TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    projection_dim=768,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=1,
)


# --------------------------------------------------------------------------------------------
# Reference computations
# --------------------------------------------------------------------------------------------

def final_layer_norm(model):
    # transformers < 5 nests the transformer under `text_model`; 5.x flattens it in memory (the
    # checkpoint keys keep the `text_model.` prefix, which the script checks after saving)
    return getattr(model, "text_model", model).final_layer_norm


@torch.no_grad()
def text_outputs(model, ids):
    out = model(ids, output_hidden_states=True)
    hs = out.hidden_states
    norm = final_layer_norm(model)
    assert len(hs) == model.config.num_hidden_layers + 1
    assert torch.equal(norm(hs[-1]), out.last_hidden_state)
    return {
        "input_ids": ids.to(torch.int64).contiguous(),
        "last_hidden_state": out.last_hidden_state.contiguous(),
        "penultimate": norm(hs[-2]).contiguous(),
        "hidden_states_minus2_raw": hs[-2].contiguous(),
        "pooler_output": out.pooler_output.contiguous(),
    }


def stats(name, tensors):
    lines = []
    for k, t in tensors.items():
        if t.dtype.is_floating_point:
            lines.append(
                f"| `{name}` | `{k}` | {list(t.shape)} | {t.abs().mean().item():.4g} | {t.abs().max().item():.4g} |"
            )
        else:
            lines.append(f"| `{name}` | `{k}` | {list(t.shape)} | int64 | |")
    return lines


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(here, "..", "Tests", "Fixtures", "models"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = os.path.abspath(args.out)

    try:
        import ftfy  # noqa: F401

        raise SystemExit("ftfy is installed: uninstall it (the fixtures use the plain, ftfy-free CLIP text cleaning)")
    except ImportError:
        pass

    torch.manual_seed(args.seed)
    torch.set_default_dtype(torch.float32)

    for sub in ("tiny-sd", "tiny-sd2-inpaint-unet", "tiny-text-gelu", "io"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    os.makedirs(os.path.join(out, "io"), exist_ok=True)
    readme_stats = []
    counts = {}

    # ---- tokenizer -------------------------------------------------------------------------
    merges, bpe_path = read_clip_merges(NUM_MERGES)
    vocab = build_vocab(merges)
    tok_dir = os.path.join(out, "tiny-sd", "tokenizer")
    gelu_tok_dir = os.path.join(out, "tiny-text-gelu", "tokenizer")
    write_tokenizer(tok_dir, vocab, merges, "<|endoftext|>")
    write_tokenizer(gelu_tok_dir, vocab, merges, "!")

    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    gelu_tokenizer = CLIPTokenizer.from_pretrained(gelu_tok_dir)
    assert tokenizer.model_max_length == MAX_LENGTH
    assert len(tokenizer) == len(vocab), (len(tokenizer), len(vocab))
    assert tokenizer.pad_token == "<|endoftext|>" and gelu_tokenizer.pad_token == "!"
    ids = tokenize(tokenizer, PROMPTS)
    gelu_ids = tokenize(gelu_tokenizer, PROMPTS)
    for tok, pad, got in ((tokenizer, "<|endoftext|>", ids), (gelu_tokenizer, "!", gelu_ids)):
        ref = ReferenceClipBPE(vocab, merges, pad)
        expected = torch.tensor([ref.encode(p) for p in PROMPTS], dtype=torch.int64)
        assert torch.equal(expected, got), f"transformers and the reference BPE disagree (pad {pad!r})"
    print("tokenizer: vocab", len(vocab), "| first prompt:", tokenizer.convert_ids_to_tokens(ids[0][:12].tolist()))
    n_long = len(tokenizer(PROMPTS[2]).input_ids)
    assert n_long > MAX_LENGTH, n_long
    print("tokenizer: long prompt has", n_long, "ids before truncation")

    # ---- models ----------------------------------------------------------------------------
    text_encoder = CLIPTextModel(text_config(vocab, "<|endoftext|>", "quick_gelu", 3)).eval()
    perturb(text_encoder)
    round_through(text_encoder, torch.float16)

    vae = AutoencoderKL(**TINY_VAE).eval()
    perturb(vae)

    unet = UNet2DConditionModel(**TINY_UNET).eval()
    perturb(unet)

    inpaint_unet = UNet2DConditionModel(**TINY_INPAINT_UNET).eval()
    perturb(inpaint_unet)
    round_through(inpaint_unet, torch.bfloat16)

    gelu_encoder = CLIPTextModel(text_config(vocab, "!", "gelu", 2)).eval()
    perturb(gelu_encoder)

    counts["tiny-sd/text_encoder (CLIPTextModel, quick_gelu, 3 layers)"] = count(text_encoder)
    counts["tiny-sd/unet (UNet2DConditionModel)"] = count(unet)
    counts["tiny-sd/vae (AutoencoderKL)"] = count(vae)
    counts["tiny-sd2-inpaint-unet/unet (UNet2DConditionModel, 9 in-channels)"] = count(inpaint_unet)
    counts["tiny-text-gelu/text_encoder (CLIPTextModel, gelu, 2 layers)"] = count(gelu_encoder)

    # ---- reference outputs -----------------------------------------------------------------
    text = text_outputs(text_encoder, ids)
    text_gelu = text_outputs(gelu_encoder, gelu_ids)

    with torch.no_grad():
        image = torch.rand(1, 3, 64, 64) * 2 - 1
        posterior = vae.encode(image).latent_dist
        z = torch.randn(1, 4, 16, 16)
        decoded = vae.decode(z).sample
    vae_io = {
        "image": image,
        "posterior_mean": posterior.mean.contiguous(),
        "posterior_logvar": posterior.logvar.contiguous(),
        "z": z,
        "decoded": decoded.contiguous(),
    }

    with torch.no_grad():
        sample = torch.randn(2, 4, 16, 16)
        timesteps = torch.tensor([1, 981], dtype=torch.int64)
        ehs = torch.randn(2, 7, 32)
        unet_out = unet(sample, timesteps, encoder_hidden_states=ehs).sample
        unet_out_500 = unet(sample, 500, encoder_hidden_states=ehs).sample
    unet_io = {
        "sample": sample,
        "timesteps": timesteps,
        "encoder_hidden_states": ehs,
        "out": unet_out.contiguous(),
        "out_t500": unet_out_500.contiguous(),
    }

    with torch.no_grad():
        sample9 = torch.randn(2, 9, 16, 16)
        timesteps9 = torch.tensor([10, 700], dtype=torch.int64)
        ehs9 = torch.randn(2, 5, 32)
        inpaint_out = inpaint_unet(sample9, timesteps9, encoder_hidden_states=ehs9).sample
    inpaint_io = {
        "sample": sample9,
        "timesteps": timesteps9,
        "encoder_hidden_states": ehs9,
        "out": inpaint_out.contiguous(),
    }

    io_files = {
        "text.safetensors": text,
        "text-gelu.safetensors": text_gelu,
        "vae.safetensors": vae_io,
        "unet.safetensors": unet_io,
        "unet-inpaint.safetensors": inpaint_io,
    }
    for name, tensors in io_files.items():
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "io", name))
        readme_stats += stats(name, tensors)

    # ---- save the model folders ------------------------------------------------------------
    # SD1.5's scheduler_config.json carries clip_sample (shared with DDIM); PNDMScheduler ignores it
    scheduler = PNDMScheduler.from_config(SD15_SCHEDULER)
    text_encoder.to(torch.float16)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    sd_dir = os.path.join(out, "tiny-sd")
    pipe.save_pretrained(sd_dir, safe_serialization=True)
    text_encoder.to(torch.float32)
    prefix_text_keys(os.path.join(sd_dir, "text_encoder", "model.safetensors"))
    sched_path = os.path.join(sd_dir, "scheduler", "scheduler_config.json")
    with open(sched_path) as f:
        sched_cfg = json.load(f)
    sched_cfg.setdefault("clip_sample", False)
    with open(sched_path, "w") as f:
        json.dump(dict(sorted(sched_cfg.items(), key=lambda kv: (not kv[0].startswith("_"), kv[0]))), f, indent=2)
        f.write("\n")
    # the pipeline re-saves the tokenizer in the library's current format; put the classic files back
    shutil.rmtree(tok_dir)
    write_tokenizer(tok_dir, vocab, merges, "<|endoftext|>")

    inpaint_dir = os.path.join(out, "tiny-sd2-inpaint-unet", "unet")
    inpaint_unet.to(torch.bfloat16).save_pretrained(inpaint_dir, safe_serialization=True)
    inpaint_unet.to(torch.float32)

    gelu_dir = os.path.join(out, "tiny-text-gelu", "text_encoder")
    gelu_encoder.save_pretrained(gelu_dir, safe_serialization=True)
    prefix_text_keys(os.path.join(gelu_dir, "model.safetensors"))

    # ---- reload everything from disk and check it reproduces the references ----------------
    checks = []
    loaded = StableDiffusionPipeline.from_pretrained(sd_dir, safety_checker=None, requires_safety_checker=False)
    assert isinstance(loaded.scheduler, PNDMScheduler)
    assert check_dtype(os.path.join(sd_dir, "text_encoder", "model.safetensors"), torch.float16, "text_model.")
    assert check_dtype(os.path.join(sd_dir, "unet", "diffusion_pytorch_model.safetensors"), torch.float32)
    assert check_dtype(os.path.join(sd_dir, "vae", "diffusion_pytorch_model.safetensors"), torch.float32)
    assert check_dtype(os.path.join(inpaint_dir, "diffusion_pytorch_model.safetensors"), torch.bfloat16)
    assert check_dtype(os.path.join(gelu_dir, "model.safetensors"), torch.float32, "text_model.")

    assert torch.equal(tokenize(loaded.tokenizer, PROMPTS), ids)
    te = loaded.text_encoder.to(torch.float32).eval()
    for k, v in text_outputs(te, ids).items():
        checks.append((f"text.{k}", max_rel(v.float(), text[k].float())))
    with torch.no_grad():
        lvae = loaded.vae.to(torch.float32).eval()
        checks.append(("vae.posterior_mean", max_rel(lvae.encode(image).latent_dist.mean, vae_io["posterior_mean"])))
        checks.append(("vae.decoded", max_rel(lvae.decode(z).sample, decoded)))
        lunet = loaded.unet.to(torch.float32).eval()
        checks.append(("unet.out", max_rel(lunet(sample, timesteps, encoder_hidden_states=ehs).sample, unet_out)))
        checks.append(("unet.out_t500", max_rel(lunet(sample, 500, encoder_hidden_states=ehs).sample, unet_out_500)))
        l9 = UNet2DConditionModel.from_pretrained(inpaint_dir).to(torch.float32).eval()
        checks.append(("unet-inpaint.out", max_rel(l9(sample9, timesteps9, encoder_hidden_states=ehs9).sample, inpaint_out)))
    lg = CLIPTextModel.from_pretrained(gelu_dir).to(torch.float32).eval()
    assert torch.equal(tokenize(CLIPTokenizer.from_pretrained(gelu_tok_dir), PROMPTS), gelu_ids)
    for k, v in text_outputs(lg, gelu_ids).items():
        checks.append((f"text-gelu.{k}", max_rel(v.float(), text_gelu[k].float())))
    for name, err in checks:
        assert err < 1e-6, f"reload check {name}: max relative error {err}"
    print("reload checks: max relative error", max(e for _, e in checks))

    # ---- full-size architecture parameter counts (meta tensors: shapes only, no memory) ----
    with torch.device("meta"):
        full = {
            "UNet2DConditionModel, SD1.5 config": count(UNet2DConditionModel(**SD15_UNET)),
            "AutoencoderKL, SD config": count(AutoencoderKL(**SD_VAE)),
            "CLIPTextModel, ViT-L/14 text config": count(CLIPTextModel(CLIPTextConfig(**VIT_L14_TEXT))),
        }
    expected_full = [859_520_964, 83_653_863, 123_060_480]
    for (name, n), want in zip(full.items(), expected_full):
        print(f"full-size {name}: {n:,} (expected {want:,})")
        assert n == want, f"{name}: {n} != {want}"

    # ---- versions and README ---------------------------------------------------------------
    import numpy
    import tokenizers

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": numpy.__version__,
        "command": " ".join([os.path.basename(sys.executable)] + [os.path.relpath(sys.argv[0], os.path.join(here, ".."))] + sys.argv[1:]),
        "seed": args.seed,
        "clip_bpe_source": "open_clip/" + os.path.basename(bpe_path) + f" (first {NUM_MERGES} merges)",
    }
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump(versions, f, indent=2)
        f.write("\n")

    sizes = []
    for root, _, files in sorted(os.walk(out)):
        for name in sorted(files):
            path = os.path.join(root, name)
            if name in ("README.md",):
                continue
            sizes.append((os.path.relpath(path, out), os.path.getsize(path)))
    write_readme(out, vocab, counts, full, readme_stats, sizes, versions)
    total = sum(s for _, s in sizes)
    for rel, s in sizes:
        print(f"{s:>10,}  {rel}")
    print(f"{total:>10,}  total (without README.md)")


def write_readme(out, vocab, counts, full, readme_stats, sizes, versions):
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    L = []
    L.append("# Model parity fixtures")
    L.append("")
    L.append("Generated by `scripts/make_model_fixtures.py` (see `versions.json` for the library versions and the")
    L.append(f"command line; seed {versions['seed']}). Do not edit by hand: re-run the script. All reference outputs were")
    L.append("computed in float32 on the CPU by diffusers / transformers from the weights exactly as stored here")
    L.append("(F16 / BF16 weights were rounded to that type before the reference run, so a loader that widens")
    L.append("them to float32 sees the same numbers). The script reloads every folder with diffusers /")
    L.append("transformers and checks it reproduces the references.")
    L.append("")
    L.append("All weights are random, then re-drawn so that no layer is an identity or zero map:")
    L.append("LayerNorm/GroupNorm weight `1 + 0.2·N(0,1)`; every bias (norm biases too) `0.2·N(0,1)`;")
    L.append("embeddings `N(0, 0.5²)`; every other weight `N(0, 1/fan_in)` with `fan_in = numel / shape[0]`")
    L.append("(this includes the normally zero-initialised `conv_out` and `proj_out` layers).")
    L.append("")
    L.append("## Tokenizer (`tiny-sd/tokenizer/`, `tiny-text-gelu/tokenizer/`)")
    L.append("")
    L.append(f"CLIP's BPE cut down to its first {NUM_MERGES} merges, in the exact CLIPTokenizer file format:")
    L.append("- `vocab.json`: token → id. Ids 0–255: the 256 byte characters of `bytes_to_unicode` in its order;")
    L.append("  256–511: the same characters + `</w>`; then one entry per merge (the pair joined), in merge order;")
    L.append(f"  then `<|startoftext|>` = {bos} and `<|endoftext|>` = {eos}. {len(vocab)} entries. Written as")
    L.append("  compact UTF-8 JSON (non-ASCII characters raw, not `\\u` escaped).")
    L.append(f"- `merges.txt`: the header line `#version: 0.2`, then the {NUM_MERGES} merges, `a b` one a line.")
    L.append("- `tokenizer_config.json`: `model_max_length` 77, `do_lower_case` true, bos/eos/unk as AddedToken")
    L.append("  objects (`{\"__type\": \"AddedToken\", \"content\": ...}`), `pad_token` a plain string, as in SD1.5.")
    L.append("- `special_tokens_map.json`: bos/eos/unk as objects (`{\"content\": ...}`), `pad_token` a string.")
    L.append("- `tiny-sd/tokenizer`: pad `<|endoftext|>` (SD1.x). `tiny-text-gelu/tokenizer`: identical except")
    L.append("  pad `!` (id 0), the SD2.x convention.")
    L.append("")
    L.append("The ids in `io/text*.safetensors` are what `StableDiffusionPipeline.encode_prompt` feeds the text")
    L.append("encoder: `tokenizer(prompts, padding=\"max_length\", max_length=77, truncation=True)`, i.e.")
    L.append("`[bos] + ids[:75] + [eos]` then pad. The script also checks them against its own plain-Python")
    L.append("statement of CLIP's slow tokenizer without ftfy (NFC, whitespace collapse, lowercase, the CLIP split")
    L.append("pattern, byte→unicode, lowest-rank-first BPE). The prompts are:")
    L.append("")
    for i, p in enumerate(PROMPTS):
        L.append(f"{i}. `{json.dumps(p)}`")
    L.append("")
    L.append("## Model folders")
    L.append("")
    L.append("Each component was written with `save_pretrained(..., safe_serialization=True)`, so `config.json`")
    L.append("keys and safetensors tensor names are exactly diffusers' / transformers'. Text-encoder tensors")
    L.append("carry the `text_model.` prefix (`text_model.embeddings.token_embedding.weight`, ...), as in SD1.x/2.x")
    L.append("checkpoints; transformers 5.x itself saves them without the prefix (and loads both), so the script")
    L.append("adds it back. No `position_ids` buffer is stored (older checkpoints have one; loaders ignore it).")
    L.append("")
    L.append("- `tiny-sd/`: a full `StableDiffusionPipeline` folder: `model_index.json` (safety checker,")
    L.append("  feature extractor and image encoder null, `requires_safety_checker` false),")
    L.append("  - `scheduler/scheduler_config.json`: `PNDMScheduler` with the SD1.5 settings (scaled_linear,")
    L.append("    0.00085 → 0.012, 1000 steps, `skip_prk_steps`, `steps_offset` 1, `set_alpha_to_one` false,")
    L.append("    `clip_sample` false).")
    L.append("  - `text_encoder/`: `CLIPTextModel`, hidden 32, intermediate 37, 3 layers, 4 heads, 77 positions,")
    L.append(f"    `quick_gelu`, eps 1e-5, vocab {len(vocab)}, bos {bos} / eos {eos} / pad {eos}. **F16** weights (`model.safetensors`).")
    L.append("  - `unet/`: `UNet2DConditionModel`, blocks (16, 32, 32), down (CrossAttn, CrossAttn, Down), up")
    L.append("    (Up, CrossAttn, CrossAttn), 2 layers per block, cross-attention dim 32, `attention_head_dim` 8,")
    L.append("    8 norm groups, `flip_sin_to_cos` true, `freq_shift` 0. F32 weights. Note: in diffusers'")
    L.append("    UNet2DConditionModel `attention_head_dim` is (for legacy reasons) the NUMBER of heads: 8 heads")
    L.append("    of width 2 in the 16-channel block, 8 heads of width 4 in the 32-channel blocks and the mid block.")
    L.append("  - `vae/`: `AutoencoderKL`, blocks (16, 32, 32), 2 layers per block, 4 latent channels, 8 norm")
    L.append("    groups, 64×64 images ↔ 4×16×16 latents, scaling factor 0.18215. F32 weights.")
    L.append("- `tiny-sd2-inpaint-unet/unet/`: SD2-inpainting-style `UNet2DConditionModel`: 9 input channels,")
    L.append("  4 output, blocks (32, 64), down (CrossAttn, Down), up (Up, CrossAttn), 1 layer per block,")
    L.append("  `attention_head_dim` (2, 4) per block (again head COUNTS: 2 heads in the 32-channel block, 4 in")
    L.append("  the 64-channel block and the mid block; the up blocks use the list reversed),")
    L.append("  `use_linear_projection` true (transformer proj_in / proj_out are Linear, not 1×1 convs),")
    L.append("  cross-attention dim 32, 8 norm groups. **BF16** weights.")
    L.append("- `tiny-text-gelu/`: SD2-style text encoder: `text_encoder/` `CLIPTextModel` with `gelu` (exact, erf)")
    L.append(f"  activation, 2 layers, hidden 32, 4 heads, intermediate 37, pad id 0 (`!`). F32 weights.")
    L.append("  `tokenizer/` as described above (pad `!`).")
    L.append("")
    L.append("### Parameter counts (sum of numel)")
    L.append("")
    L.append("| model | parameters |")
    L.append("|---|---:|")
    for k, v in counts.items():
        L.append(f"| {k} | {v:,} |")
    L.append("")
    L.append("Full-size architectures built by diffusers / transformers from config (no weights saved; counted")
    L.append("on the `meta` device, which allocates shapes only):")
    L.append("")
    L.append("| architecture | parameters |")
    L.append("|---|---:|")
    for k, v in full.items():
        L.append(f"| {k} | {v:,} |")
    L.append("")
    L.append("## Inputs and reference outputs (`io/`)")
    L.append("")
    L.append("All float32 except ids and timesteps (int64).")
    L.append("")
    L.append("- `text.safetensors` (tiny-sd text encoder and tokenizer), `text-gelu.safetensors` (tiny-text-gelu):")
    L.append("  `input_ids` [3, 77]; `last_hidden_state` [3, 77, 32] (after `final_layer_norm`);")
    L.append("  `penultimate` [3, 77, 32] = `final_layer_norm(hidden_states[-2])` (what diffusers' `clip_skip=1`")
    L.append("  gives); `hidden_states_minus2_raw` = `hidden_states[-2]` (output of the second-to-last layer,")
    L.append("  no norm); `pooler_output` [3, 32] = `last_hidden_state` at the first position holding the eos id.")
    L.append("  No attention mask (as SD does); causal mask only.")
    L.append("- `vae.safetensors`: `image` [1, 3, 64, 64] uniform in [-1, 1); `posterior_mean`, `posterior_logvar`")
    L.append("  [1, 4, 16, 16] = `vae.encode(image).latent_dist.mean / .logvar` (after `quant_conv`, logvar clamped")
    L.append("  to [-30, 20]); `z` [1, 4, 16, 16] N(0,1); `decoded` [1, 3, 64, 64] = `vae.decode(z).sample`")
    L.append("  (`post_quant_conv` + decoder; no scaling factor applied).")
    L.append("- `unet.safetensors` (tiny-sd unet): `sample` [2, 4, 16, 16] N(0,1); `timesteps` [2] = [1, 981];")
    L.append("  `encoder_hidden_states` [2, 7, 32] N(0,1); `out` [2, 4, 16, 16] = `unet(sample, timesteps, ehs).sample`;")
    L.append("  `out_t500` = the same call with the scalar `timestep=500` (broadcast to the batch).")
    L.append("- `unet-inpaint.safetensors` (tiny-sd2-inpaint-unet): `sample` [2, 9, 16, 16]; `timesteps` [2] =")
    L.append("  [10, 700]; `encoder_hidden_states` [2, 5, 32]; `out` [2, 4, 16, 16].")
    L.append("")
    L.append("Magnitudes (mean |x|, max |x|), for choosing tolerances:")
    L.append("")
    L.append("| file | tensor | shape | mean abs | max abs |")
    L.append("|---|---|---|---:|---:|")
    L.extend(readme_stats)
    L.append("")
    L.append("## File sizes (bytes)")
    L.append("")
    L.append("| file | bytes |")
    L.append("|---|---:|")
    for rel, s in sizes:
        L.append(f"| `{rel}` | {s:,} |")
    L.append(f"| total (without this README) | {sum(s for _, s in sizes):,} |")
    L.append("")
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(L))


if __name__ == "__main__":
    main()
