#!/usr/bin/env python3
"""Make full-size random-weight Stable Diffusion models in diffusers layout, for benchmarks.

The architectures are exactly the published ones (the configs below are written out from
runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-xl-base-1.0); only the weights
are random (PyTorch's default initialisation, seeded). Nothing is downloaded (HF_HUB_OFFLINE=1):
the tokenizer comes from assets/clip/{vocab.json,merges.txt} in this repository.

    /root/kiln-venv/bin/python bench/make_random_models.py --family sd15 --out /root/models/sd15-random
    /root/kiln-venv/bin/python bench/make_random_models.py --family sdxl --out /root/models/sdxl-random

Weights are saved as fp16 safetensors (half the disk; loaders upcast). Each component is built,
converted and saved on its own to keep peak memory low (SDXL's UNet: ~10 GiB in fp32 while
building). SD1.5 takes ~2 GB on disk, SDXL ~7 GB.

Requirements: torch, diffusers, transformers, safetensors (see the venv in PERFORMANCE.md).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from transformers import (  # noqa: E402
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP_ASSETS = os.path.join(REPO, "assets", "clip")

transformers.logging.set_verbosity_error()
diffusers.logging.set_verbosity_error()

# ---------------------------------------------------------------------------------------------
# Published configs (fields that only name training/runtime details are kept as published).
# ---------------------------------------------------------------------------------------------

SD15_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                         "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                       "CrossAttnUpBlock2D"],
}

SDXL_UNET = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "class_embed_type": None,
    "class_embeddings_concat": False,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "cross_attention_dim": 2048,
    "cross_attention_norm": None,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_only_cross_attention": None,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_attention_heads": None,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "resnet_out_scale_factor": 1.0,
    "resnet_skip_time_act": False,
    "resnet_time_scale_shift": "default",
    "sample_size": 128,
    "time_cond_proj_dim": None,
    "time_embedding_act_fn": None,
    "time_embedding_dim": None,
    "time_embedding_type": "positional",
    "timestep_post_act": None,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    # The hub file says null; diffusers treats it as False. Written as False so that strict
    # readers (and older Kiln builds) accept the saved config.
    "upcast_attention": False,
    "use_linear_projection": True,
}

SD_VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

SDXL_VAE = dict(SD_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True)

# openai/clip-vit-large-patch14, text tower (SD1.5 text_encoder, SDXL text_encoder).
CLIP_L = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}

# laion/CLIP-ViT-bigG-14 text tower (SDXL text_encoder_2, with projection).
CLIP_BIGG = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 5120,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "pad_token_id": 1,
    "projection_dim": 1280,
    "vocab_size": 49408,
}

SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": diffusers.__version__,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

SDXL_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": diffusers.__version__,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def save_model(model, folder, dtype):
    """Converts `model` to `dtype` in place and saves it as safetensors into `folder`."""
    model.to(dtype)
    model.save_pretrained(folder, safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    log(f"  {os.path.basename(folder)}: {params / 1e6:.1f} M parameters")
    return params


def make_unet(config, seed, folder, dtype):
    torch.manual_seed(seed)
    t = time.time()
    unet = UNet2DConditionModel(**config)
    params = save_model(unet, folder, dtype)
    log(f"  unet built and saved in {time.time() - t:.0f} s")
    del unet
    return params


def make_vae(config, seed, folder, dtype):
    torch.manual_seed(seed)
    vae = AutoencoderKL(**config)
    params = save_model(vae, folder, dtype)
    del vae
    return params


def make_clip(config, with_projection, seed, folder, dtype):
    torch.manual_seed(seed)
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    cfg = CLIPTextConfig(**config)
    cfg.architectures = [cls.__name__]
    model = cls(cfg)
    params = save_model(model, folder, dtype)
    del model
    return params


def write_tokenizer(folder, pad):
    """Old-style (SD1.5 / SDXL repo) tokenizer folder: vocab.json, merges.txt,
    tokenizer_config.json, special_tokens_map.json."""
    os.makedirs(folder, exist_ok=True)
    tok = CLIPTokenizer.from_pretrained(CLIP_ASSETS, model_max_length=77, pad_token=pad)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        with open(os.path.join(tmp, "tokenizer_config.json")) as f:
            cfg = json.load(f)
    for k in ("is_local", "local_files_only", "name_or_path"):
        cfg.pop(k, None)
    cfg["model_max_length"] = 77
    cfg["do_lower_case"] = True
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": pad,
        "unk_token": "<|endoftext|>",
    }
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2, sort_keys=True)
        f.write("\n")
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(CLIP_ASSETS, name), os.path.join(folder, name))
    back = CLIPTokenizer.from_pretrained(folder)
    assert back.pad_token == pad and back.model_max_length == 77, (back.pad_token, pad)


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def model_index(family):
    common = {
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if family == "sd15":
        return dict(
            common,
            _class_name="StableDiffusionPipeline",
            requires_safety_checker=False,
            safety_checker=[None, None],
            scheduler=["diffusers", "PNDMScheduler"],
        )
    return dict(
        common,
        _class_name="StableDiffusionXLPipeline",
        force_zeros_for_empty_prompt=True,
        scheduler=["diffusers", "EulerDiscreteScheduler"],
        text_encoder_2=["transformers", "CLIPTextModelWithProjection"],
        tokenizer_2=["transformers", "CLIPTokenizer"],
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", choices=["sd15", "sdxl"], required=True)
    ap.add_argument("--out", required=True, help="output folder (replaced if it exists)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16",
                    help="dtype of the saved weights (default fp16)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32

    out = os.path.abspath(args.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    tmp_out = out + ".partial"
    if os.path.exists(tmp_out):
        shutil.rmtree(tmp_out)
    os.makedirs(tmp_out)
    t0 = time.time()
    log(f"making random {args.family} into {out} ({args.dtype})")
    sdxl = args.family == "sdxl"
    total = 0
    total += make_clip(CLIP_L, False, args.seed + 1, os.path.join(tmp_out, "text_encoder"), dtype)
    write_tokenizer(os.path.join(tmp_out, "tokenizer"), "<|endoftext|>")
    if sdxl:
        total += make_clip(CLIP_BIGG, True, args.seed + 2,
                           os.path.join(tmp_out, "text_encoder_2"), dtype)
        write_tokenizer(os.path.join(tmp_out, "tokenizer_2"), "!")
    total += make_vae(SDXL_VAE if sdxl else SD_VAE, args.seed + 3, os.path.join(tmp_out, "vae"),
                      dtype)
    total += make_unet(SDXL_UNET if sdxl else SD15_UNET, args.seed + 4,
                       os.path.join(tmp_out, "unet"), dtype)
    write_json(os.path.join(tmp_out, "scheduler", "scheduler_config.json"),
               SDXL_SCHEDULER if sdxl else SD15_SCHEDULER)
    write_json(os.path.join(tmp_out, "model_index.json"), model_index(args.family))
    os.rename(tmp_out, out)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    log(f"done: {total / 1e6:.1f} M parameters, {size / 1e9:.2f} GB on disk, "
        f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
