#!/usr/bin/env python3
"""Build the SDXL, few-step (Turbo, LCM) and tiny-autoencoder parity fixtures.

Run by hand with the reference virtualenv (never by tests or the product), after
scripts/make_model_fixtures.py and scripts/make_pipeline_fixtures.py:

    /work/venv/bin/python scripts/make_sdxl_fixtures.py [--root .]

Models written under Tests/Fixtures/models/ (random weights, torch.manual_seed per model):
  tiny-sdxl/          StableDiffusionXLPipeline: tiny-sd's VAE and tokenizer, a CLIPTextModel and a
                      CLIPTextModelWithProjection (tokenizer_2 pads with "!"), a 3-level U-Net with
                      addition_embed_type "text_time", per-level heads and transformer depths,
                      linear projections; SDXL's EulerDiscreteScheduler config.
  tiny-sdxl-inpaint/  the same with a 9-channel U-Net (StableDiffusionXLInpaintPipeline).
  tiny-sdxl-refiner/  StableDiffusionXLImg2ImgPipeline with only the second text encoder and a
                      U-Net taking 5 time ids (requires_aesthetics_score).
  tiny-lcm/           LatentConsistencyModelPipeline: tiny-sd's parts, a U-Net with
                      time_cond_proj_dim, an LCMScheduler config.
  tiny-taesd/         an AutoencoderTiny with f = 4 (tiny-sd's latent grid).
  tiny-sd-turbo/, tiny-sdxl-turbo/
                      SD-Turbo / SDXL-Turbo style folders: tiny-sd's / tiny-sdxl's parts (symlinks) with
                      Euler / Euler ancestral at "trailing" timestep spacing.

LoRAs written to Tests/Fixtures/sdxl/ (see make_loras), applied in the references with diffusers'
load_lora_weights + fuse_lora(lora_scale).

Runs (64x64, seed 42, prompt "a red circle above a blue square", negative "green" unless said),
written to Tests/Fixtures/sdxl/<name>.png with manifest.json (arguments and versions).
"""

import argparse
import json
import os
import platform
import shutil

import numpy as np
import PIL
import torch
from PIL import Image
from safetensors.torch import save_file

import diffusers
import safetensors
import transformers
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LatentConsistencyModelPipeline,
    LCMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

PROMPT = "a red circle above a blue square"
NEGATIVE = "green"
SEED = 42

SDXL_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "interpolation_type": "linear", "num_train_timesteps": 1000, "prediction_type": "epsilon",
    "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "timestep_spacing": "leading", "trained_betas": None, "use_karras_sigmas": False,
}
LCM_SCHEDULER = {
    "_class_name": "LCMScheduler",
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "clip_sample_range": 1.0, "num_train_timesteps": 1000, "original_inference_steps": 50,
    "prediction_type": "epsilon", "rescale_betas_zero_snr": False, "set_alpha_to_one": True,
    "steps_offset": 1, "timestep_scaling": 10.0, "timestep_spacing": "leading", "trained_betas": None,
}


def text_config(act, projection_dim=32, width=32):
    # The second encoder is wider than the first, as in SDXL (768 and 1280): diffusers' single-file
    # loader tells the two apart by width.
    return CLIPTextConfig(vocab_size=1114, hidden_size=width, intermediate_size=37, num_hidden_layers=3,
                          num_attention_heads=4, max_position_embeddings=77, hidden_act=act,
                          bos_token_id=1112, eos_token_id=1113, pad_token_id=1113, projection_dim=projection_dim)


def sdxl_unet(seed, in_channels=4, time_ids=6, cross=80, projection=16):
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=16, in_channels=in_channels, out_channels=4, layers_per_block=2,
        block_out_channels=(16, 32, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4, 4), transformer_layers_per_block=(1, 1, 2), use_linear_projection=True,
        norm_num_groups=8, cross_attention_dim=cross, addition_embed_type="text_time",
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=time_ids * 8 + projection,
    ).eval()


def lcm_unet(seed):
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(16, 32, 32),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=8, norm_num_groups=8, cross_attention_dim=32, time_cond_proj_dim=32,
    ).eval()


def tiny_taesd(seed):
    torch.manual_seed(seed)
    vae = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(8, 8, 8),
                          num_encoder_blocks=(1, 2, 2), num_decoder_blocks=(2, 2, 1), latent_channels=4).eval()
    # Default init leaves the decoder's output near a constant; widen the weights so colours vary.
    with torch.no_grad():
        for p in vae.parameters():
            p.mul_(1.5)
    return vae


def save_pipeline(pipe, folder):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    pipe.save_pretrained(folder, safe_serialization=True)


def build_models(root, tiny_sd):
    models = os.path.join(root, "Tests/Fixtures/models")
    vae = AutoencoderKL.from_pretrained(tiny_sd, subfolder="vae", torch_dtype=torch.float32).eval()
    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd, subfolder="tokenizer")
    tokenizer_2 = CLIPTokenizer.from_pretrained(tiny_sd, subfolder="tokenizer", pad_token="!")
    torch.manual_seed(1)
    te1 = CLIPTextModel(text_config("quick_gelu")).eval()
    torch.manual_seed(2)
    te2 = CLIPTextModelWithProjection(text_config("gelu", projection_dim=16, width=48)).eval()
    sched = EulerDiscreteScheduler.from_config(SDXL_SCHEDULER)

    base = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer,
                                     tokenizer_2=tokenizer_2, unet=sdxl_unet(3), scheduler=sched,
                                     force_zeros_for_empty_prompt=True, add_watermarker=False)
    save_pipeline(base, os.path.join(models, "tiny-sdxl"))
    inpaint = StableDiffusionXLInpaintPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer,
                                               tokenizer_2=tokenizer_2, unet=sdxl_unet(4, in_channels=9),
                                               scheduler=sched, requires_aesthetics_score=False,
                                               force_zeros_for_empty_prompt=True, add_watermarker=False)
    save_pipeline(inpaint, os.path.join(models, "tiny-sdxl-inpaint"))
    refiner = StableDiffusionXLImg2ImgPipeline(vae=vae, text_encoder=None, text_encoder_2=te2, tokenizer=None,
                                               tokenizer_2=tokenizer_2, unet=sdxl_unet(5, time_ids=5, cross=48),
                                               scheduler=sched, requires_aesthetics_score=True,
                                               force_zeros_for_empty_prompt=False, add_watermarker=False)
    save_pipeline(refiner, os.path.join(models, "tiny-sdxl-refiner"))

    sd = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False,
                                          torch_dtype=torch.float32)
    lcm = LatentConsistencyModelPipeline(vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer,
                                         unet=lcm_unet(6), scheduler=LCMScheduler.from_config(LCM_SCHEDULER),
                                         safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    save_pipeline(lcm, os.path.join(models, "tiny-lcm"))

    taesd = tiny_taesd(7)
    folder = os.path.join(models, "tiny-taesd")
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    taesd.save_pretrained(folder, safe_serialization=True)


def few_step_folder(models, name, base, scheduler_class):
    """A Turbo-style folder: the base model's parts (relative symlinks) with a trailing-spacing scheduler."""
    folder = os.path.join(models, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(os.path.join(folder, "scheduler"))
    for part in sorted(os.listdir(os.path.join(models, base))):
        if part != "scheduler":
            os.symlink(os.path.join("..", base, part), os.path.join(folder, part))
    with open(os.path.join(models, base, "scheduler/scheduler_config.json")) as f:
        config = json.load(f)
    config = scheduler_class.from_config(config, timestep_spacing="trailing").config
    config = dict(config, _class_name=scheduler_class.__name__)
    with open(os.path.join(folder, "scheduler/scheduler_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)


def run_list(models):
    def m(name):
        return os.path.join(models, name)
    runs = []
    for sampler in ["euler", "euler-a", "dpm++2m", "ddim"]:
        runs.append(dict(name=f"sdxl-txt2img-{sampler}", model=m("tiny-sdxl"), kind="sdxl", sampler=sampler,
                         steps=5, guidance=5.0, negative=NEGATIVE))
    runs.append(dict(name="sdxl-txt2img-no-negative", model=m("tiny-sdxl"), kind="sdxl", sampler="euler",
                     steps=5, guidance=5.0, negative=None))
    runs.append(dict(name="sdxl-txt2img-empty-negative", model=m("tiny-sdxl"), kind="sdxl", sampler="euler",
                     steps=5, guidance=5.0, negative=""))
    runs.append(dict(name="sdxl-txt2img-sizes", model=m("tiny-sdxl"), kind="sdxl", sampler="euler",
                     steps=5, guidance=5.0, negative=NEGATIVE, original_size=(128, 96), crop=(8, 4),
                     target_size=(64, 48)))
    runs.append(dict(name="sdxl-img2img", model=m("tiny-sdxl"), kind="sdxl-img2img", sampler="euler",
                     steps=5, guidance=5.0, negative=NEGATIVE, strength=0.6))
    runs.append(dict(name="sdxl-inpaint9", model=m("tiny-sdxl-inpaint"), kind="sdxl-inpaint", sampler="euler",
                     steps=5, guidance=5.0, negative=NEGATIVE, strength=1.0))
    runs.append(dict(name="sdxl-refiner", model=m("tiny-sdxl"), refiner=m("tiny-sdxl-refiner"), kind="sdxl-refiner",
                     sampler="euler", steps=10, guidance=5.0, negative=NEGATIVE, switch=0.8))
    for steps in (1, 4):
        runs.append(dict(name=f"sdxl-turbo-{steps}", model=m("tiny-sdxl-turbo"), kind="sdxl", sampler=None,
                         steps=steps, guidance=0.0, negative=None))
        runs.append(dict(name=f"sd-turbo-{steps}", model=m("tiny-sd-turbo"), kind="sd", sampler=None,
                         steps=steps, guidance=0.0, negative=None))
    runs.append(dict(name="lcm-unet-4", model=m("tiny-lcm"), kind="lcm", sampler=None, steps=4, guidance=8.5,
                     negative=None))
    runs.append(dict(name="lcm-sampler-4", model=m("tiny-sd"), kind="sd", sampler="lcm", steps=4, guidance=1.0,
                     negative=None))
    runs.append(dict(name="sdxl-lora", model=m("tiny-sdxl"), kind="sdxl", sampler="euler", steps=5, guidance=5.0,
                     negative=NEGATIVE, lora="sdxl-lora.safetensors", lora_scale=0.8))
    runs.append(dict(name="lcm-lora-4", model=m("tiny-sd"), kind="sd", sampler="lcm", steps=4, guidance=1.0,
                     negative=None, lora="lcm-lora.safetensors", lora_scale=1.0))
    runs.append(dict(name="taesd-txt2img", model=m("tiny-sd"), vae=m("tiny-taesd"), kind="sd", sampler="euler",
                     steps=5, guidance=7.5, negative=NEGATIVE))
    runs.append(dict(name="taesd-img2img", model=m("tiny-sd"), vae=m("tiny-taesd"), kind="sd-img2img",
                     sampler="euler", steps=5, guidance=7.5, negative=NEGATIVE, strength=0.6))
    return runs


def lora_pair(gen, out_features, in_shape, rank):
    down = torch.randn((rank,) + tuple(in_shape), generator=gen) * 0.3
    up = torch.randn((out_features, rank) + ((1, 1) if len(in_shape) == 3 else ()), generator=gen) * 0.3
    return down, up


def make_loras(models, out_dir):
    """Two kohya-form LoRAs (uniform alpha 2, rank 4, so every reader scales alike):
    sdxl-lora.safetensors for tiny-sdxl: U-Net modules under LDM names (input_blocks_…), a q_proj of
      text encoder 1 (lora_te1_) and a v_proj of text encoder 2 (lora_te2_);
    lcm-lora.safetensors for tiny-sd, as the LCM-LoRA release writes them: diffusers module paths
      (lora_unet_down_blocks_…) including a LoCon 3x3 resnet conv and a time_emb_proj."""
    gen = torch.Generator().manual_seed(11)
    sdxl = StableDiffusionXLPipeline.from_pretrained(m_path(models, "tiny-sdxl"), add_watermarker=False, torch_dtype=torch.float32)
    tensors = {}

    def add(key, weight):
        shape = weight.shape
        in_shape = (shape[1],) if weight.ndim == 2 else (shape[1], shape[2], shape[3])
        down, up = lora_pair(gen, shape[0], in_shape, 4)
        tensors[key + ".lora_down.weight"] = down
        tensors[key + ".lora_up.weight"] = up
        tensors[key + ".alpha"] = torch.tensor(2.0)

    u = dict(sdxl.unet.named_parameters())
    # tiny-sdxl: level 1 is input_blocks 4 and 5 (level 0 holds 1, 2 and the downsampler 3).
    add("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", u["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"])
    add("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", u["down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"])
    add("lora_unet_middle_block_1_proj_in", u["mid_block.attentions.0.proj_in.weight"])
    add("lora_unet_output_blocks_0_1_transformer_blocks_1_ff_net_2", u["up_blocks.0.attentions.0.transformer_blocks.1.ff.net.2.weight"])
    t1 = {te_name(k): v for k, v in sdxl.text_encoder.named_parameters()}
    t2 = {te_name(k): v for k, v in sdxl.text_encoder_2.named_parameters()}
    add("lora_te1_text_model_encoder_layers_0_self_attn_q_proj", t1["text_model.encoder.layers.0.self_attn.q_proj.weight"])
    add("lora_te2_text_model_encoder_layers_1_self_attn_v_proj", t2["text_model.encoder.layers.1.self_attn.v_proj.weight"])
    save_file(tensors, os.path.join(out_dir, "sdxl-lora.safetensors"), metadata={"ss_network_module": "networks.lora"})

    sd = StableDiffusionPipeline.from_pretrained(m_path(models, "tiny-sd"), safety_checker=None, requires_safety_checker=False,
                                                 torch_dtype=torch.float32)
    tensors = {}
    u = dict(sd.unet.named_parameters())
    for name in ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v",
                 "down_blocks.0.resnets.0.conv1", "down_blocks.0.resnets.0.time_emb_proj", "up_blocks.1.attentions.1.proj_out"]:
        add("lora_unet_" + name.replace(".", "_"), u[name + ".weight"])
    save_file(tensors, os.path.join(out_dir, "lcm-lora.safetensors"), metadata={"ss_network_module": "networks.lora"})


def te_name(k):
    return k if k.startswith("text_model.") or k.startswith("text_projection") else "text_model." + k


def m_path(models, name):
    return os.path.join(models, name)


def scheduler_for(folder, sampler):
    with open(os.path.join(folder, "scheduler/scheduler_config.json")) as f:
        config = json.load(f)
    if sampler is None:
        return getattr(diffusers, config["_class_name"]).from_config(config)
    if sampler == "euler":
        return EulerDiscreteScheduler.from_config(config)
    if sampler == "euler-a":
        return EulerAncestralDiscreteScheduler.from_config(config)
    if sampler == "ddim":
        return DDIMScheduler.from_config(config)
    if sampler == "dpm++2m":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2,
                                                       use_karras_sigmas=False)
    if sampler == "lcm":
        return LCMScheduler.from_config(config)
    raise ValueError(sampler)


def to_png(image, path):
    image.save(path)


def with_lora(pipe, r, out_dir):
    """The LoRA fused into the weights. U-Net modules: diffusers' load_lora_weights + fuse_lora.
    Text-encoder modules (diffusers 0.42.1 with transformers 5 cannot convert kohya text-encoder
    keys): W += scale * alpha/rank * up @ down, kohya's formula, on the module the key names — and
    the U-Net part is checked to equal that formula too."""
    if "lora" not in r:
        return pipe
    from safetensors.torch import load_file
    path = os.path.join(out_dir, r["lora"])
    tensors = load_file(path)
    scale = r["lora_scale"]
    unet_only = {k: v for k, v in tensors.items() if k.startswith("lora_unet_")}
    before = {k: v.detach().clone() for k, v in pipe.unet.named_parameters()}
    pipe.load_lora_weights(unet_only)
    pipe.fuse_lora(lora_scale=scale)
    pipe.unload_lora_weights()
    fused = dict(pipe.unet.named_parameters())
    encoders = {"lora_te1_": getattr(pipe, "text_encoder", None), "lora_te2_": getattr(pipe, "text_encoder_2", None),
                "lora_te_": getattr(pipe, "text_encoder", None)}
    changed = 0
    for key in [k for k in tensors if k.endswith(".lora_down.weight")]:
        base = key[: -len(".lora_down.weight")]
        down, up = tensors[key].float(), tensors[base + ".lora_up.weight"].float()
        rank = down.shape[0]
        alpha = float(tensors[base + ".alpha"]) if base + ".alpha" in tensors else rank
        delta = scale * alpha / rank * (up.flatten(1) @ down.flatten(1))
        if base.startswith("lora_unet_"):
            # The parameter that diffusers changed; it must have changed by the formula's delta.
            names = [n for n in before if not torch.equal(before[n], fused[n].detach()) and n.endswith(".weight")
                     and fused[n].numel() == delta.numel()
                     and torch.allclose(fused[n].detach().flatten(1) - before[n].flatten(1), delta.reshape(fused[n].shape).flatten(1),
                                        atol=1e-5)]
            assert len(names) >= 1, base
            changed += 1
            continue
        prefix = next(p for p in encoders if base.startswith(p))
        module = base[len(prefix):]
        params = {te_name(n).replace(".", "_"): prm for n, prm in encoders[prefix].named_parameters()}
        prm = params[module + "_weight"]
        with torch.no_grad():
            prm.add_(delta.reshape(prm.shape))
    print(f"{r['name']}: {changed} U-Net modules fused by diffusers equal the formula")
    return pipe


def run(r, out_dir, init, mask):
    g = torch.manual_seed(SEED)
    common = dict(num_inference_steps=r["steps"], guidance_scale=r["guidance"], generator=g)
    if r.get("negative") is not None:
        common["negative_prompt"] = r["negative"]
    kind = r["kind"]
    if kind.startswith("sdxl"):
        cls = {"sdxl": StableDiffusionXLPipeline, "sdxl-img2img": StableDiffusionXLImg2ImgPipeline,
               "sdxl-inpaint": StableDiffusionXLInpaintPipeline, "sdxl-refiner": StableDiffusionXLPipeline}[kind]
        pipe = with_lora(cls.from_pretrained(r["model"], add_watermarker=False, torch_dtype=torch.float32), r, out_dir)
        pipe.scheduler = scheduler_for(r["model"], r["sampler"])
        for key in ("original_size", "target_size"):
            if key in r:
                common[key] = tuple(r[key])
        if "crop" in r:
            common["crops_coords_top_left"] = tuple(r["crop"])
        if kind == "sdxl":
            image = pipe(PROMPT, height=64, width=64, **common).images[0]
        elif kind == "sdxl-img2img":
            image = pipe(PROMPT, image=init, strength=r["strength"], **common).images[0]
        elif kind == "sdxl-inpaint":
            image = pipe(PROMPT, image=init, mask_image=mask, strength=r["strength"], height=64, width=64,
                         **common).images[0]
        else:
            latents = pipe(PROMPT, height=64, width=64, denoising_end=r["switch"], output_type="latent",
                           **common).images
            refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(r["refiner"], add_watermarker=False,
                                                                       torch_dtype=torch.float32)
            refiner.scheduler = scheduler_for(r["refiner"], r["sampler"])
            image = refiner(PROMPT, image=latents, denoising_start=r["switch"], **common).images[0]
    elif kind == "lcm":
        pipe = LatentConsistencyModelPipeline.from_pretrained(r["model"], safety_checker=None,
                                                              torch_dtype=torch.float32)
        image = pipe(PROMPT, height=64, width=64, num_inference_steps=r["steps"], guidance_scale=r["guidance"],
                     generator=g).images[0]
    else:
        extra = {}
        if "vae" in r:
            extra["vae"] = AutoencoderTiny.from_pretrained(r["vae"], torch_dtype=torch.float32)
        cls = StableDiffusionImg2ImgPipeline if kind == "sd-img2img" else StableDiffusionPipeline
        pipe = cls.from_pretrained(r["model"], safety_checker=None, requires_safety_checker=False,
                                   torch_dtype=torch.float32, **extra)
        pipe = with_lora(pipe, r, out_dir)
        pipe.scheduler = scheduler_for(r["model"], r["sampler"])
        if kind == "sd-img2img":
            image = pipe(PROMPT, image=init, strength=r["strength"], **common).images[0]
        else:
            image = pipe(PROMPT, height=64, width=64, **common).images[0]
    to_png(image, os.path.join(out_dir, r["name"] + ".png"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=".")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = os.path.abspath(args.root)
    models = os.path.join(root, "Tests/Fixtures/models")
    tiny_sd = os.path.join(models, "tiny-sd")
    if not args.only:
        build_models(root, tiny_sd)
    few_step_folder(models, "tiny-sd-turbo", "tiny-sd", EulerDiscreteScheduler)
    few_step_folder(models, "tiny-sdxl-turbo", "tiny-sdxl", EulerAncestralDiscreteScheduler)
    out_dir = os.path.join(root, "Tests/Fixtures/sdxl")
    os.makedirs(out_dir, exist_ok=True)
    if not args.only:
        make_loras(models, out_dir)
    pipelines = os.path.join(root, "Tests/Fixtures/pipelines")
    init = Image.open(os.path.join(pipelines, "init.png")).convert("RGB")
    mask = Image.open(os.path.join(pipelines, "mask.png"))
    runs = run_list(models)
    for r in runs:
        if args.only and r["name"] not in args.only:
            continue
        run(r, out_dir, init, mask)
        print("wrote", r["name"])
    manifest = dict(
        versions=dict(python=platform.python_version(), torch=torch.__version__, diffusers=diffusers.__version__,
                      transformers=transformers.__version__, safetensors=safetensors.__version__,
                      numpy=np.__version__, pillow=PIL.__version__, torch_num_threads=1,
                      command="python scripts/make_sdxl_fixtures.py"),
        prompt=PROMPT, seed=SEED, width=64, height=64,
        runs=[{k: (os.path.relpath(v, root) if k in ("model", "refiner", "vae") else v) for k, v in r.items()}
              for r in runs],
    )
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
