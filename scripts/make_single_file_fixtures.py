#!/usr/bin/env python3
"""Build the single-file checkpoint fixtures under Tests/Fixtures/single-file/.

Run by hand with the reference virtualenv (never by tests or the product):

    /work/venv/bin/python scripts/make_single_file_fixtures.py

For each tiny model it
  1. builds a diffusers StableDiffusionPipeline folder (random weights, seed 0);
  2. writes the same weights as one LDM-layout `.safetensors` file (CompVis/Stability key names:
     model.diffusion_model.*, first_stage_model.* with the VAE attention as 1x1 convolutions,
     cond_stage_model.transformer.* for SD1 or cond_stage_model.model.* (OpenCLIP, fused in_proj,
     text_projection, one more resblock than diffusers keeps) for SD2);
  3. proves that file is what diffusers expects: diffusers' own loader
     (`from_single_file(file, config=folder)`) must give back every tensor of the folder exactly;
  4. renders a reference image with diffusers from the single file (5 steps, seed 42, torch CPU
     generator) and saves it as PNG and float32 array.

Models:
  sd1/       SD1-style, F16 file, CLIP keys with "text_model." (tiny-sd's configs);
             reference: from_single_file(config=sd1/folder)
  sd1-plain/ SD1-style whose every setting is the SD 1.x default the loader assumes without a
             config (8 heads, 32 norm groups, the real 49408-token CLIP vocabulary, PNDM), CLIP keys
             without "text_model."; the folder written beside it is only the reference's config
  sd2/       SD2-style (OpenCLIP text encoder, linear projections, head dim 64 per level,
             v-prediction DDIM), BF16 file, with an A1111 .yaml beside it saying parameterization "v"
  sd2-inpaint/ SD2 inpainting (9-channel U-Net, OpenCLIP, ε-prediction like 512-inpainting-ema, no
             .yaml), BF16 file; reference as sd1-inpaint
  sdxl/      SDXL (tiny-sdxl's configs and weights rounded to F16): CLIP under
             conditioner.embedders.0.transformer., the projected OpenCLIP encoder (all its layers) under
             conditioner.embedders.1.model., add_embedding as label_emb; reference:
             StableDiffusionXLPipeline.from_single_file(config=sdxl/folder), 64x64
  sd1-inpaint/ SD1 inpainting (9-channel U-Net, tiny-sd-inpaint's configs), F16 file; reference:
             StableDiffusionInpaintPipeline.from_single_file(config=sd1-inpaint/folder), DDIM,
             on Tests/Fixtures/pipelines/init.png and mask.png (inpaint-s42.png)

`python scripts/make_single_file_fixtures.py NAME …` rebuilds only those models (the others and
the manifest's entries for them stay).
"""

import json
import os
import shutil
import sys

import numpy as np
import torch

import diffusers
import safetensors
import transformers
from diffusers import (AutoencoderKL, DDIMScheduler, PNDMScheduler, StableDiffusionInpaintPipeline,
                       StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "single-file")
TINY = os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-sd")
FAMILIES = os.path.join(ROOT, "Checkpoints", "families")
PROMPT = "a red circle above a blue square"
NEGATIVE = "green"


def randomise(module, gen):
    """Every weight re-drawn so no layer is an identity or zero map (as make_model_fixtures.py)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p.numel() // p.shape[0]
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)


# ---- diffusers -> LDM names (the reverse of diffusers' convert_ldm_* functions) ----

RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
          "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def unet_name(name, cfg):
    p = name.split(".")
    layers = cfg["layers_per_block"]
    n_levels = len(cfg["block_out_channels"])
    if p[0] == "conv_in":
        return "input_blocks.0.0." + ".".join(p[1:])
    if p[0] == "time_embedding":
        return ("time_embed.0." if p[1] == "linear_1" else "time_embed.2.") + ".".join(p[2:])
    if p[0] == "add_embedding":
        return ("label_emb.0.0." if p[1] == "linear_1" else "label_emb.0.2.") + ".".join(p[2:])
    if p[0] == "conv_norm_out":
        return "out.0." + ".".join(p[1:])
    if p[0] == "conv_out":
        return "out.2." + ".".join(p[1:])
    if p[0] == "mid_block":
        idx = 1 if p[1] == "attentions" else (0 if p[2] == "0" else 2)
        if p[1] == "resnets":
            p[3] = RESNET.get(p[3], p[3])
        return f"middle_block.{idx}." + ".".join(p[3:])
    b, kind, l = int(p[1]), p[2], int(p[3])
    if p[0] == "down_blocks":
        first = 1 + b * (layers + 1)
        if kind == "resnets":
            p[4] = RESNET.get(p[4], p[4])
            return f"input_blocks.{first + l}.0." + ".".join(p[4:])
        if kind == "attentions":
            return f"input_blocks.{first + l}.1." + ".".join(p[4:])
        return f"input_blocks.{first + layers}.0.op." + ".".join(p[5:])
    first = b * (layers + 1)
    if kind == "resnets":
        p[4] = RESNET.get(p[4], p[4])
        return f"output_blocks.{first + l}.0." + ".".join(p[4:])
    if kind == "attentions":
        return f"output_blocks.{first + l}.1." + ".".join(p[4:])
    has_attn = "CrossAttn" in cfg["up_block_types"][b]
    return f"output_blocks.{first + layers}.{2 if has_attn else 1}.conv." + ".".join(p[5:])


def vae_name(name, n_levels):
    p = name.split(".")
    side = p[0]
    if p[1] == "conv_norm_out":
        return f"{side}.norm_out." + ".".join(p[2:])
    if p[1] in ("down_blocks", "up_blocks"):
        i = int(p[2])
        level = f"down.{i}" if p[1] == "down_blocks" else f"up.{n_levels - 1 - i}"
        if p[3] == "resnets":
            if p[5] == "conv_shortcut":
                p[5] = "nin_shortcut"
            return f"{side}.{level}.block.{p[4]}." + ".".join(p[5:])
        return f"{side}.{level}.{'downsample' if p[3] == 'downsamplers' else 'upsample'}." + ".".join(p[5:])
    if p[1] == "mid_block":
        if p[2] == "resnets":
            return f"{side}.mid.block_{int(p[3]) + 1}." + ".".join(p[4:])
        module = ".".join(p[4:-1])
        stored = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}[module]
        return f"{side}.mid.attn_1.{stored}.{p[-1]}"
    return name


def openclip_state_dict(te, pre, projection=None, extra_openclip_block=None, layers=None):
    """transformers CLIP tensors `te` (names with "text_model.") in OpenCLIP's layout under `pre`."""
    sd = {}
    sd[pre + "token_embedding.weight"] = te["text_model.embeddings.token_embedding.weight"]
    sd[pre + "positional_embedding"] = te["text_model.embeddings.position_embedding.weight"]
    sd[pre + "ln_final.weight"] = te["text_model.final_layer_norm.weight"]
    sd[pre + "ln_final.bias"] = te["text_model.final_layer_norm.bias"]
    width = te["text_model.final_layer_norm.weight"].shape[0]
    sd[pre + "text_projection"] = (projection if projection is not None
                                   else torch.randn(width, width, generator=torch.Generator().manual_seed(5)))
    sd[pre + "logit_scale"] = torch.tensor(4.6052)
    blocks = list(range(layers)) + ([layers] if extra_openclip_block is not None else [])
    for i in blocks:
        if i < layers:
            g = lambda n: te[f"text_model.encoder.layers.{i}.{n}"]
        else:
            g = lambda n: extra_openclip_block[n]
        b = pre + f"transformer.resblocks.{i}."
        sd[b + "ln_1.weight"], sd[b + "ln_1.bias"] = g("layer_norm1.weight"), g("layer_norm1.bias")
        sd[b + "ln_2.weight"], sd[b + "ln_2.bias"] = g("layer_norm2.weight"), g("layer_norm2.bias")
        sd[b + "attn.in_proj_weight"] = torch.cat([g(f"self_attn.{x}_proj.weight") for x in "qkv"])
        sd[b + "attn.in_proj_bias"] = torch.cat([g(f"self_attn.{x}_proj.bias") for x in "qkv"])
        sd[b + "attn.out_proj.weight"], sd[b + "attn.out_proj.bias"] = g("self_attn.out_proj.weight"), g("self_attn.out_proj.bias")
        sd[b + "mlp.c_fc.weight"], sd[b + "mlp.c_fc.bias"] = g("mlp.fc1.weight"), g("mlp.fc1.bias")
        sd[b + "mlp.c_proj.weight"], sd[b + "mlp.c_proj.bias"] = g("mlp.fc2.weight"), g("mlp.fc2.bias")
    return sd


def text_tensors(model):
    return {(k if k.startswith("text_model.") or k.startswith("text_projection") else "text_model." + k): v
            for k, v in model.state_dict().items() if not k.endswith("position_ids")}


def ldm_state_dict(pipe, text_layout, keep_text_model_prefix=True, extra_openclip_block=None):
    sd = {}
    ucfg = pipe.unet.config
    for k, v in pipe.unet.state_dict().items():
        sd["model.diffusion_model." + unet_name(k, ucfg)] = v
    n = len(pipe.vae.config.block_out_channels)
    for k, v in pipe.vae.state_dict().items():
        name = vae_name(k, n)
        if ".mid.attn_1." in name and v.ndim == 2:
            v = v[:, :, None, None]  # stored as 1x1 convolutions
        sd["first_stage_model." + name] = v
    # transformers 5 names CLIPTextModel's tensors without "text_model."; files have it.
    te = text_tensors(pipe.text_encoder)
    if text_layout == "sdxl":
        for k, v in te.items():
            sd["conditioner.embedders.0.transformer." + k] = v
        te2 = text_tensors(pipe.text_encoder_2)
        sd.update(openclip_state_dict(te2, "conditioner.embedders.1.model.", projection=te2["text_projection.weight"].t(),
                                      layers=pipe.text_encoder_2.config.num_hidden_layers))
    elif text_layout == "transformers":
        for k, v in te.items():
            key = k if keep_text_model_prefix else k[len("text_model."):]
            sd["cond_stage_model.transformer." + key] = v
    else:
        sd.update(openclip_state_dict(te, "cond_stage_model.model.", extra_openclip_block=extra_openclip_block,
                                      layers=pipe.text_encoder.config.num_hidden_layers))
    # What real files carry besides the model: an EMA copy and schedule buffers (ignored by loaders).
    sd["model_ema.decay"] = torch.tensor(0.9999)
    sd["alphas_cumprod"] = torch.linspace(0.99, 0.01, 1000)
    return {k: v.contiguous() for k, v in sd.items()}


def check_same(reference_pipe, loaded, label):
    for part in ("unet", "vae", "text_encoder") + (("text_encoder_2",) if hasattr(reference_pipe, "text_encoder_2") else ()):
        a = getattr(reference_pipe, part).state_dict()
        b = getattr(loaded, part).state_dict()
        a = {k.replace("text_model.", ""): v for k, v in a.items() if not k.endswith("position_ids")}
        b = {k.replace("text_model.", ""): v for k, v in b.items() if not k.endswith("position_ids")}
        assert set(a) == set(b), (label, part, set(a) ^ set(b))
        for k in a:
            assert torch.equal(a[k].float(), b[k].float()), (label, part, k)
    print(f"{label}: diffusers' from_single_file gives back every tensor of the folder")


def render(pipe, name, out_dir, **kw):
    g = torch.manual_seed(42)
    out = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=5, guidance_scale=7.5, generator=g,
               output_type="np", **kw).images[0]
    arr = (out * 255).round().astype(np.uint8)
    from PIL import Image
    Image.fromarray(arr).save(os.path.join(out_dir, name + ".png"))
    print(f"{name}: {arr.shape}")


def build_sdxl():
    return StableDiffusionXLPipeline.from_pretrained(os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-sdxl"),
                                                     add_watermarker=False, torch_dtype=torch.float32)


def build_sd1():
    pipe = StableDiffusionPipeline.from_pretrained(TINY, safety_checker=None, requires_safety_checker=False)
    return pipe


def build_sd1_plain():
    gen = torch.Generator().manual_seed(1)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                                cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
                        norm_num_groups=32, sample_size=32)
    tcfg = CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                          num_attention_heads=1, max_position_embeddings=77, hidden_act="quick_gelu",
                          bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    te = CLIPTextModel(tcfg)
    for m in (unet, vae, te):
        randomise(m, gen)
    tok = CLIPTokenizer.from_pretrained(os.path.join(FAMILIES, "sd1", "tokenizer"))
    sched = PNDMScheduler.from_pretrained(os.path.join(FAMILIES, "sd1", "scheduler"))
    return StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def build_sd1_inpaint():
    pipe = StableDiffusionInpaintPipeline.from_pretrained(os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-sd-inpaint"),
                                                          safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    return pipe


def build_sd2_inpaint():
    """SD2-style inpainting: a 9-channel U-Net, OpenCLIP text encoder, epsilon (as 512-inpainting-ema)."""
    pipe = build_sd2(in_channels=9, prediction="epsilon", seed=4)
    return StableDiffusionInpaintPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet,
                                          scheduler=pipe.scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)


def build_sd2(in_channels=4, prediction="v_prediction", seed=2):
    gen = torch.Generator().manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=8, in_channels=in_channels, out_channels=4, block_out_channels=(32, 64),
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                                cross_attention_dim=32, attention_head_dim=(2, 4), norm_num_groups=8,
                                use_linear_projection=True, upcast_attention=True)
    vae = AutoencoderKL(block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
                        norm_num_groups=8, sample_size=32)
    te = CLIPTextModel.from_pretrained(os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-text-gelu", "text_encoder"))
    for m in (unet, vae):
        randomise(m, gen)
    tok = CLIPTokenizer.from_pretrained(os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-text-gelu", "tokenizer"))
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1, prediction_type=prediction)
    return StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def main():
    torch.set_num_threads(1)
    only = sys.argv[1:]
    old_manifest = {}
    if only:
        with open(os.path.join(OUT, "manifest.json")) as f:
            old_manifest = json.load(f)
    elif os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT, exist_ok=True)
    manifest = {"versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                             "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                             "numpy": np.__version__, "command": "python scripts/make_single_file_fixtures.py"},
                "prompt": PROMPT, "negative_prompt": NEGATIVE, "steps": 5, "guidance": 7.5, "seed": 42, "models": {}}
    gen = torch.Generator().manual_seed(3)
    for name, build, layout, dtype, keep_prefix in [
        ("sd1", build_sd1, "transformers", torch.float16, True),
        ("sd1-plain", build_sd1_plain, "transformers", torch.float16, False),
        ("sd2", build_sd2, "openclip", torch.bfloat16, True),
        ("sd1-inpaint", build_sd1_inpaint, "transformers", torch.float16, True),
        ("sd2-inpaint", build_sd2_inpaint, "openclip", torch.bfloat16, True),
        ("sdxl", build_sdxl, "sdxl", torch.float16, True),
    ]:
        if only and name not in only:
            if name in old_manifest.get("models", {}):
                manifest["models"][name] = old_manifest["models"][name]
            continue
        shutil.rmtree(os.path.join(OUT, name), ignore_errors=True)
        pipe = build()
        folder = os.path.join(OUT, name, "folder")
        # Round the weights to the file's type first, so folder and file hold the same numbers.
        for part in (pipe.unet, pipe.vae, pipe.text_encoder) + ((pipe.text_encoder_2,) if name == "sdxl" else ()):
            with torch.no_grad():
                for p in part.parameters():
                    p.copy_(p.to(dtype).float())
        pipe.save_pretrained(folder, safe_serialization=True)
        # transformers 5 writes tokenizer.json only; keep the vocab.json / merges.txt form SD folders ship.
        tokenizer_source = {"sd1": os.path.join(TINY, "tokenizer"), "sd1-plain": os.path.join(FAMILIES, "sd1", "tokenizer"),
                            "sd2": os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-text-gelu", "tokenizer"),
                            "sd1-inpaint": os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-sd-inpaint", "tokenizer"),
                            "sd2-inpaint": os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-text-gelu", "tokenizer"),
                            "sdxl": os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-sdxl", "tokenizer")}[name]
        shutil.rmtree(os.path.join(folder, "tokenizer"))
        shutil.copytree(tokenizer_source, os.path.join(folder, "tokenizer"))
        extra = None
        if layout == "openclip":
            width = pipe.text_encoder.config.hidden_size
            inter = pipe.text_encoder.config.intermediate_size
            extra = {"layer_norm1.weight": torch.ones(width), "layer_norm1.bias": torch.zeros(width),
                     "layer_norm2.weight": torch.ones(width), "layer_norm2.bias": torch.zeros(width),
                     "self_attn.q_proj.weight": torch.randn(width, width, generator=gen), "self_attn.q_proj.bias": torch.zeros(width),
                     "self_attn.k_proj.weight": torch.randn(width, width, generator=gen), "self_attn.k_proj.bias": torch.zeros(width),
                     "self_attn.v_proj.weight": torch.randn(width, width, generator=gen), "self_attn.v_proj.bias": torch.zeros(width),
                     "self_attn.out_proj.weight": torch.randn(width, width, generator=gen), "self_attn.out_proj.bias": torch.zeros(width),
                     "mlp.fc1.weight": torch.randn(inter, width, generator=gen), "mlp.fc1.bias": torch.zeros(inter),
                     "mlp.fc2.weight": torch.randn(width, inter, generator=gen), "mlp.fc2.bias": torch.zeros(width)}
        sd = ldm_state_dict(pipe, layout, keep_text_model_prefix=keep_prefix, extra_openclip_block=extra)
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
        path = os.path.join(OUT, name, "model.safetensors")
        save_file(sd, path)
        if layout == "openclip" and pipe.scheduler.config.prediction_type == "v_prediction":
            with open(os.path.join(OUT, name, "model.yaml"), "w") as f:
                f.write("model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    parameterization: \"v\"\n")
        reference_path = path
        if not keep_prefix:
            # diffusers only recognises CLIP keys with "text_model." (older transformers saved them
            # without it; A1111 loads both): its reference reads a copy with the prefix put back.
            reference_path = os.path.join(OUT, name, "with-prefix.safetensors")
            fixed = {k.replace("cond_stage_model.transformer.", "cond_stage_model.transformer.text_model."): v for k, v in sd.items()}
            save_file(fixed, reference_path)
        cls = StableDiffusionInpaintPipeline if name.endswith("inpaint") else StableDiffusionPipeline
        if name == "sdxl":
            loaded = StableDiffusionXLPipeline.from_single_file(reference_path, config=folder, local_files_only=True,
                                                                add_watermarker=False, torch_dtype=torch.float32)
        else:
            loaded = cls.from_single_file(reference_path, config=folder, safety_checker=None,
                                          requires_safety_checker=False, local_files_only=True)
        if reference_path != path:
            os.remove(reference_path)
        check_same(pipe, loaded, name)
        loaded.set_progress_bar_config(disable=True)
        if name.endswith("inpaint"):
            from PIL import Image
            pipelines = os.path.join(ROOT, "Tests", "Fixtures", "pipelines")
            init, mask = Image.open(os.path.join(pipelines, "init.png")), Image.open(os.path.join(pipelines, "mask.png"))
            render(loaded, "inpaint-s42", os.path.join(OUT, name), image=init, mask_image=mask, width=init.width, height=init.height)
        elif name == "sdxl":
            render(loaded, "txt2img-s42", os.path.join(OUT, name), width=64, height=64)
        else:
            render(loaded, "txt2img-s42", os.path.join(OUT, name))
        if name == "sd1-plain":
            # The folder is only the reference's config: the test loads the file without --config.
            shutil.rmtree(folder)
        manifest["models"][name] = {"file": f"{name}/model.safetensors", "dtype": str(dtype).replace("torch.", ""),
                                    "text_layout": layout, "tensors": len(sd),
                                    "scheduler": pipe.scheduler.__class__.__name__,
                                    "prediction_type": pipe.scheduler.config.prediction_type}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
