#!/usr/bin/env python3
"""The peer side of `kiln bench`: the same measurements with diffusers (PyTorch, CPU).

    /root/kiln-venv/bin/python bench/diffusers_bench.py --model /root/models/sd15-random \
        --size 512x512 --steps 5 --cfg 7 --precision bf16 --threads 2

Measures, like `kiln bench`: pipeline load time (from_pretrained, imports excluded), text
encoding of prompt and negative prompt (after `--warmup` untimed runs), the median and minimum
time of a UNet step (cond and uncond as one batch of 2 when cfg > 1, guidance combine included,
random latents, the real timesteps of the model's scheduler; after `--warmup` untimed steps),
one VAE decode at the size, and peak RSS (getrusage ru_maxrss). Prints one JSON object with the
same keys as `kiln bench --json`.
"""

import argparse
import json
import os
import resource
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import torch  # noqa: E402

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import DiffusionPipeline  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
diffusers.logging.set_verbosity_error()
diffusers.utils.logging.disable_progress_bar()

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def parse_size(text):
    t = text.lower().replace("×", "x")
    w, _, h = t.partition("x")
    w, h = int(w), int(h or w)
    if w <= 0 or h <= 0 or w % 8 or h % 8:
        raise argparse.ArgumentTypeError(f"size must be positive multiples of 8, got {text}")
    return w, h


def log(quiet, *a):
    if not quiet:
        print("diffusers bench:", *a, file=sys.stderr, flush=True)


def peak_rss_bytes():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return rss if sys.platform == "darwin" else rss * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="diffusers folder")
    ap.add_argument("--size", type=parse_size, default=None,
                    help="WIDTHxHEIGHT (default: the UNet's sample_size × 8)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--cfg", type=float, default=7.0)
    ap.add_argument("--precision", choices=sorted(DTYPES), default="fp32")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", default="a photograph of an astronaut riding a horse on the moon")
    ap.add_argument("--negative", default="blurry, low quality, watermark")
    ap.add_argument("--no-decode", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    torch.set_num_threads(args.threads)
    dtype = DTYPES[args.precision]
    q = args.quiet

    log(q, f"loading {args.model} in {args.precision}")
    t = time.perf_counter()
    pipe = DiffusionPipeline.from_pretrained(args.model, torch_dtype=dtype)
    load_s = time.perf_counter() - t
    pipe.set_progress_bar_config(disable=True)
    sdxl = hasattr(pipe, "text_encoder_2")
    unet, vae = pipe.unet, pipe.vae
    factor = pipe.vae_scale_factor
    if args.size is None:
        side = unet.config.sample_size * factor
        args.size = (side, side)
    width, height = args.size
    lh, lw = height // factor, width // factor
    use_cfg = args.cfg > 1.0
    batch = 2 if use_cfg else 1
    device = torch.device("cpu")

    with torch.inference_mode():
        log(q, "encoding text")

        def encode():
            if sdxl:
                return pipe.encode_prompt(
                    prompt=args.prompt, device=device, num_images_per_prompt=1,
                    do_classifier_free_guidance=use_cfg, negative_prompt=args.negative)
            pos, neg = pipe.encode_prompt(args.prompt, device, 1, use_cfg, args.negative)
            return pos, neg, None, None

        for _ in range(args.warmup):
            encode()
        t = time.perf_counter()
        pos, neg, pooled, neg_pooled = encode()
        text_encode_s = time.perf_counter() - t

        context = torch.cat([neg, pos]) if use_cfg else pos
        added = None
        if sdxl:
            ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype)
            added = {
                "text_embeds": torch.cat([neg_pooled, pooled]) if use_cfg else pooled,
                "time_ids": ids.repeat(batch, 1),
            }

        scheduler = pipe.scheduler
        scheduler.set_timesteps(args.steps, device=device)
        timesteps = list(scheduler.timesteps)
        gen = torch.Generator("cpu").manual_seed(0)
        latents = torch.randn((1, unet.config.in_channels, lh, lw), generator=gen,
                              dtype=torch.float32).to(dtype) * scheduler.init_noise_sigma

        def step(index):
            tstep = timesteps[index % len(timesteps)]
            t0 = time.perf_counter()
            model_in = scheduler.scale_model_input(latents, tstep)
            if use_cfg:
                model_in = torch.cat([model_in] * 2)
            out = unet(model_in, tstep, encoder_hidden_states=context,
                       added_cond_kwargs=added, return_dict=False)[0]
            if use_cfg:
                uncond, cond = out.chunk(2)
                out = uncond + args.cfg * (cond - uncond)
            return time.perf_counter() - t0, out

        for w in range(args.warmup):
            log(q, f"UNet warm-up {w + 1}/{args.warmup}")
            step(w)
        steps = []
        finite = True
        for s in range(args.steps):
            secs, out = step(s)
            finite = finite and bool(torch.isfinite(out).all())
            log(q, f"UNet step {s + 1}/{args.steps}: {secs:.2f} s")
            steps.append(secs)

        vae_decode_s = None
        if not args.no_decode:
            log(q, "VAE decode")
            z = torch.randn((1, vae.config.latent_channels, lh, lw), generator=gen,
                            dtype=torch.float32).to(dtype)
            t = time.perf_counter()
            image = vae.decode(z, return_dict=False)[0]
            vae_decode_s = time.perf_counter() - t
            finite = finite and bool(torch.isfinite(image).all())

    srt = sorted(steps)
    n = len(srt)
    med = srt[n // 2] if n % 2 else (srt[n // 2 - 1] + srt[n // 2]) / 2
    report = {
        "tool": f"diffusers-{args.precision}",
        "model": args.model,
        "family": "sdxl" if sdxl else "sd",
        "width": width,
        "height": height,
        "precision": args.precision,
        "threads": torch.get_num_threads(),
        "cfg": args.cfg,
        "unet_batch": batch,
        "context_tokens": int(context.shape[1]),
        "load_s": load_s,
        "text_encode_s": text_encode_s,
        "unet_steps_s": steps,
        "unet_step_median_s": med,
        "unet_step_min_s": srt[0],
        "vae_decode_s": vae_decode_s,
        "peak_rss_bytes": peak_rss_bytes(),
        "outputs_finite": finite,
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
