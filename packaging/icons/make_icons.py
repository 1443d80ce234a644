"""Draws Kiln's app icon (a kiln's arched mouth with a glowing fire, on the app's accent colour)
and writes every size the installers need: PNGs 16-1024, kiln.ico (Windows), kiln.icns (macOS).

    /root/kiln-venv/bin/python packaging/icons/make_icons.py     (needs Pillow)

Drawn at 1024 px and downscaled with Lanczos, so small sizes stay clean.
"""
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
S = 1024
ACCENT = (226, 120, 60)        # the app's accent (theme.rs)
DARK = (38, 30, 28)
GLOW = (255, 196, 92)


def draw() -> Image.Image:
    img = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    # Rounded square body.
    d.rounded_rectangle((48, 48, S - 48, S - 48), radius=200, fill=ACCENT)
    # The kiln: a dome with an arched opening.
    d.rounded_rectangle((212, 300, S - 212, 820), radius=70, fill=DARK)
    d.pieslice((212, 140, S - 212, 620), 180, 360, fill=DARK)
    # Chimney.
    d.rectangle((600, 150, 690, 330), fill=DARK)
    # The fire in the mouth, blurred for a glow.
    fire = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    f = ImageDraw.Draw(fire)
    f.rounded_rectangle((372, 520, S - 372, 800), radius=40, fill=GLOW)
    f.pieslice((372, 400, S - 372, 640), 180, 360, fill=GLOW)
    glow = fire.filter(ImageFilter.GaussianBlur(28))
    img = Image.alpha_composite(img, glow)
    img = Image.alpha_composite(img, fire)
    # Base line.
    d = ImageDraw.Draw(img)
    d.rectangle((180, 820, S - 180, 860), fill=DARK)
    return img


def main() -> None:
    big = draw()
    sizes = [16, 24, 32, 48, 64, 128, 256, 512, 1024]
    for size in sizes:
        big.resize((size, size), Image.LANCZOS).save(HERE / f"{size}x{size}.png", optimize=True)
    big.resize((256, 256), Image.LANCZOS).save(
        HERE / "kiln.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]
    )
    big.save(HERE / "kiln.icns")
    print("wrote", ", ".join(f"{s}x{s}.png" for s in sizes), "kiln.ico kiln.icns")


if __name__ == "__main__":
    main()
