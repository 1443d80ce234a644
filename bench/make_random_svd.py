#!/usr/bin/env python3
"""Make a full-size random-weight Stable Video Diffusion model in diffusers layout, for the
memory and time measurements of issue 11 (a 14-frame 1024x576 clip on this machine).

The architecture is the published one (stabilityai/stable-video-diffusion-img2vid: the
UNetSpatioTemporalConditionModel config is diffusers' default, which is SVD's; the
AutoencoderKLTemporalDecoder config is written out below, since diffusers' defaults are a one-block
toy; the image encoder is OpenCLIP ViT-H/14 as CLIPVisionModelWithProjection);
only the weights are random (PyTorch's default initialisation, seeded). Nothing is downloaded.

    /root/kiln-venv/bin/python bench/make_random_svd.py --out /root/models/svd-random [--frames 14|25]

Weights are saved as fp16 safetensors (UNet ~3.0 GB, VAE ~0.2 GB, image encoder ~1.3 GB); each
component is built, saved and freed on its own to keep peak memory low.
"""

import argparse
import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch  # noqa: E402
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel  # noqa: E402
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
from make_svd import SVD_SCHEDULER  # noqa: E402  (the published scheduler_config.json)

# stabilityai/stable-video-diffusion-img2vid vae/config.json (latent = image / 8).
VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512],
    layers_per_block=2,
    latent_channels=4,
    sample_size=768,
    scaling_factor=0.18215,
    force_upcast=True,
)

# stabilityai/stable-video-diffusion-img2vid image_encoder/config.json (OpenCLIP ViT-H/14).
IMAGE_ENCODER = dict(
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=32,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    projection_dim=1024,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
)


def save(model, folder):
    model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    print("wrote", folder, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--frames", type=int, default=14, choices=[14, 25])
    ap.add_argument("--only-vae", action="store_true", help="rewrite vae/ only")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)

    only_vae = args.only_vae
    torch.manual_seed(1)
    if not only_vae:
        save(UNetSpatioTemporalConditionModel(num_frames=args.frames).eval(), os.path.join(args.out, "unet"))
    torch.manual_seed(2)
    save(AutoencoderKLTemporalDecoder(**VAE).eval(), os.path.join(args.out, "vae"))
    if only_vae:
        return
    torch.manual_seed(3)
    save(CLIPVisionModelWithProjection(CLIPVisionConfig(**IMAGE_ENCODER)).eval(),
         os.path.join(args.out, "image_encoder"))
    CLIPImageProcessor(
        crop_size={"height": 224, "width": 224},
        size={"shortest_edge": 224},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    ).save_pretrained(os.path.join(args.out, "feature_extractor"))
    os.makedirs(os.path.join(args.out, "scheduler"), exist_ok=True)
    with open(os.path.join(args.out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(dict(_class_name="EulerDiscreteScheduler", **SVD_SCHEDULER), f, indent=2)
    with open(os.path.join(args.out, "model_index.json"), "w") as f:
        json.dump({
            "_class_name": "StableVideoDiffusionPipeline",
            "feature_extractor": ["transformers", "CLIPImageProcessor"],
            "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
            "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
            "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
        }, f, indent=2)
    print("done:", args.out)


if __name__ == "__main__":
    main()
