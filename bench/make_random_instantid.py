#!/usr/bin/env python3
"""Make a full-size random-weight InstantID (InstantX/InstantID layout) for benchmarks.

    /root/kiln-venv/bin/python bench/make_random_instantid.py --out /root/models/InstantID

Writes `ControlNetModel/` (IdentityNet: a ControlNet with SDXL base's published architecture,
fp16 safetensors, ~2.5 GB) and `ip-adapter.bin` (the face adapter as published: a torch.save
pickle {"image_proj": Resampler(dim 1280, depth 4, 20 heads of 64, 16 queries, 512-d ArcFace
embedding in, 2048-d tokens out), "ip_adapter": to_k_ip/to_v_ip of SDXL's 70 cross-attentions},
fp16). Convert the adapter once with `kiln models convert OUT/ip-adapter.bin`, as users do.
Nothing is downloaded; weights are random (seeded).
"""

import argparse
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402
from diffusers import ControlNetModel  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_random_models import SDXL_UNET  # noqa: E402

CONTROLNET_KEYS = [
    "act_fn", "addition_embed_type", "addition_embed_type_num_heads", "addition_time_embed_dim",
    "attention_head_dim", "block_out_channels", "cross_attention_dim", "down_block_types",
    "downsample_padding", "flip_sin_to_cos", "freq_shift", "in_channels", "layers_per_block",
    "mid_block_scale_factor", "norm_eps", "norm_num_groups", "projection_class_embeddings_input_dim",
    "transformer_layers_per_block", "use_linear_projection", "upcast_attention",
]


def cross_attention_sizes():
    """Hidden size of every attn2 in diffusers' attn_processors order (SDXL base)."""
    blocks = SDXL_UNET["block_out_channels"]
    layers = SDXL_UNET["transformer_layers_per_block"]
    sizes = []
    for level, kind in enumerate(SDXL_UNET["down_block_types"]):
        if kind.startswith("CrossAttn"):
            sizes += [blocks[level]] * (layers[level] * SDXL_UNET["layers_per_block"])
    up_layers = list(reversed(layers))
    for level, kind in enumerate(SDXL_UNET["up_block_types"]):
        if kind.startswith("CrossAttn"):
            sizes += [list(reversed(blocks))[level]] * (up_layers[level] * (SDXL_UNET["layers_per_block"] + 1))
    # diffusers orders down, up, then mid in attn_processors; the mid block's come last.
    sizes += [blocks[-1]] * layers[-1]
    return sizes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    config = {k: SDXL_UNET[k] for k in CONTROLNET_KEYS if k in SDXL_UNET}
    net = ControlNetModel(**config).half()
    net.save_pretrained(os.path.join(args.out, "ControlNetModel"), safe_serialization=True)
    del net

    d, heads, queries, embed, ctx = 1280, 20, 16, 512, SDXL_UNET["cross_attention_dim"]
    inner = 64 * heads
    r = lambda *s: (0.02 * torch.randn(*s)).half()  # noqa: E731
    proj = {
        "latents": r(1, queries, d), "proj_in.weight": r(d, embed), "proj_in.bias": r(d),
        "proj_out.weight": r(ctx, d), "proj_out.bias": r(ctx),
        "norm_out.weight": torch.ones(ctx).half(), "norm_out.bias": torch.zeros(ctx).half(),
    }
    for i in range(4):
        p = f"layers.{i}."
        for n in ["0.norm1", "0.norm2", "1.0"]:
            proj[p + n + ".weight"] = torch.ones(d).half()
            proj[p + n + ".bias"] = torch.zeros(d).half()
        proj[p + "0.to_q.weight"] = r(inner, d)
        proj[p + "0.to_kv.weight"] = r(2 * inner, d)
        proj[p + "0.to_out.weight"] = r(d, inner)
        proj[p + "1.1.weight"] = r(4 * d, d)
        proj[p + "1.3.weight"] = r(d, 4 * d)
    layers = {}
    for k, hidden in enumerate(cross_attention_sizes()):
        layers[f"{2 * k + 1}.to_k_ip.weight"] = r(hidden, ctx)
        layers[f"{2 * k + 1}.to_v_ip.weight"] = r(hidden, ctx)
    torch.save({"image_proj": proj, "ip_adapter": layers}, os.path.join(args.out, "ip-adapter.bin"))
    print(f"InstantID written to {args.out}: {len(layers) // 2} cross-attention layers")


if __name__ == "__main__":
    main()
