#!/usr/bin/env python3
"""Write a random-weight LoRA with the shape of LCM-LoRA SD1.5 (kohya layout, rank 64, fp16)
for a random SD1.5 model made by make_random_models.py, to time `kiln generate --lora FILE
--sampler lcm --steps 4 --cfg 1` (the weights are random: the image is noise, the time is real).

    /root/kiln-venv/bin/python bench/make_random_lcm_lora.py \\
        --model /root/models/sd15-random --out /root/models/sd15-random-lcm-lora.safetensors

Targets are the UNet layers latent-consistency/lcm-lora-sdv1-5 adapts: attention projections,
proj_in/proj_out, the feed-forward, resnet conv1/conv2/conv_shortcut/time_emb_proj and the
down/upsampler convolutions (about 67 M parameters, 135 MB).
"""

import argparse
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

TARGETS = (
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "conv2", "conv_shortcut", "time_emb_proj", "downsamplers.0.conv",
    "upsamplers.0.conv",
)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="diffusers folder of the random SD1.5")
    ap.add_argument("--out", required=True, help="LoRA file to write")
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    unet = os.path.join(args.model, "unet")
    files = [os.path.join(unet, f) for f in os.listdir(unet) if f.endswith(".safetensors")]
    g = torch.Generator().manual_seed(args.seed)
    sd = {}
    for path in files:
        with safe_open(path, "pt") as f:
            for name in f.keys():
                if not name.endswith(".weight"):
                    continue
                module = name[: -len(".weight")]
                if not module.endswith(TARGETS) or ".norm" in module:
                    continue
                shape = f.get_slice(name).get_shape()
                if len(shape) not in (2, 4):
                    continue
                out_dim, in_dim = shape[0], shape[1]
                r = min(args.rank, out_dim, in_dim)
                key = "lora_unet_" + module.replace(".", "_")
                if len(shape) == 4:
                    k = shape[2]
                    down = torch.randn(r, in_dim, k, k, generator=g) / (in_dim * k * k) ** 0.5
                    up = torch.randn(out_dim, r, 1, 1, generator=g) * 1e-3
                else:
                    down = torch.randn(r, in_dim, generator=g) / in_dim ** 0.5
                    up = torch.randn(out_dim, r, generator=g) * 1e-3
                sd[key + ".lora_down.weight"] = down.half()
                sd[key + ".lora_up.weight"] = up.half()
                sd[key + ".alpha"] = torch.tensor(float(r), dtype=torch.float16)
    params = sum(v.numel() for v in sd.values())
    save_file(sd, args.out, metadata={"ss_network_dim": str(args.rank), "ss_base_model_version": "sd_v1"})
    print(f"wrote {args.out}: {len(sd) // 3} modules, {params / 1e6:.1f} M parameters")


if __name__ == "__main__":
    main()
