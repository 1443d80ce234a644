#!/usr/bin/env bash
# Screenshots of the real `kiln` window, every section in English and Simplified Chinese
# (Generate, Canvas, Presets, Portrait, Batch, Comic, Video, Gallery, Models, Settings):
# docs/screenshots/<section>-<lang>.png (1280×800).
#
# Builds the release binary, prepares a throw-away library (settings, a few outputs made with
# the tiny fixture models, the fixtures as the model folder), then opens the app under Xvfb
# once per shot (KILN_SCREENSHOT=1 with KILN_SECTION / KILN_LANG; nothing is saved) and grabs
# the screen with ImageMagick's `import`. Prints the start-up timing (KILN_TIMING=1).
#
# Usage: scripts/screenshots.sh [out_dir]      (needs scripts/install-ui-test-deps.sh once)
#        SECTIONS="canvas generate" scripts/screenshots.sh   (only these sections)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${1:-$repo/docs/screenshots}"
fixtures="$repo/tests/fixtures"

for tool in xvfb-run import convert; do
    if ! command -v "$tool" > /dev/null; then
        echo "missing $tool: run scripts/install-ui-test-deps.sh first" >&2
        exit 1
    fi
done

echo "Building kiln (release)…"
(cd "$repo" && cargo build --release -p kiln --quiet)
kiln="$repo/target/release/kiln"

demo="$(mktemp -d -t kiln-screenshots.XXXXXX)"
trap 'rm -rf "$demo"' EXIT
mkdir -p "$demo/config" "$demo/data" "$demo/out" "$demo/models" "$demo/xdg"
chmod 700 "$demo/xdg"

# The model folder: the tiny fixtures, plus a damaged file to show how problems look.
ln -s "$fixtures/tiny-sd15" "$demo/models/tiny-sd15"
ln -s "$fixtures/tiny-sdxl" "$demo/models/tiny-sdxl"
ln -s "$fixtures/tiny-sd15.safetensors" "$demo/models/tiny-sd15-single-file.safetensors"
printf 'not a safetensors file' > "$demo/models/half-downloaded.safetensors"
# LoRAs: the tiny SD1.5 one (applied in the Generate shots) and the tiny SDXL one under the name
# the clay preset looks for.
mkdir -p "$demo/models/Lora" "$demo/models/ControlNet"
ln -s "$fixtures/tiny-controlnet-sd15" "$demo/models/ControlNet/tiny-controlnet-sd15"
ln -s "$fixtures/loras/sd15-kohya.safetensors" "$demo/models/Lora/sd15-kohya.safetensors"
ln -s "$fixtures/loras/sdxl-kohya.safetensors" "$demo/models/Lora/ClayAnimationRedmond.safetensors"

# A few outputs for the gallery (the CLI embeds the recipe; the app indexes them at start).
echo "Making gallery images with the tiny model…"
prompts=(
    "a clay fox in a misty forest, soft light"
    "a porcelain teapot with blue flowers, studio photo"
    "an isometric clay village at dusk"
    "a knitted whale floating above the sea"
    "黏土小狐狸，雾气森林，柔和光线"
    "a paper-cut mountain landscape, layered"
    "a ceramic owl on a bookshelf"
    "青花瓷茶壶，棚拍"
)
i=0
for prompt in "${prompts[@]}"; do
    seed=$((100 + i * 17))
    args=(--model "$fixtures/tiny-sd15" --prompt "$prompt" --negative "blurry, low quality"
          --steps 6 --seed "$seed" --output "$demo/out/kiln-demo-$i.png")
    if (( i % 2 == 1 )); then
        args+=(--init "$fixtures/init-64.png" --strength 0.35 --width 96 --height 96)
    else
        args+=(--width 96 --height 96)
    fi
    "$kiln" generate "${args[@]}" > /dev/null 2>&1
    i=$((i + 1))
done

cat > "$demo/config/settings.toml" <<EOF
output_dir = "$demo/out"
model_dirs = ["$demo/models"]
language = "en"
theme = "dark"
previews = true
last_recipe = '{"model":{"path":"$demo/models/tiny-sd15","family":"sd1"},"prompt":"a clay fox in a misty forest, soft light, studio photo","negative":"blurry, low quality","seed":1234,"sampler":"dpm++2m-karras","steps":12,"cfg":7.0,"width":128,"height":128,"batch":2,"loras":[{"path":"$demo/models/Lora/sd15-kohya.safetensors","weight":0.8,"name":"sd15-kohya"}]}'
EOF

# The canvas: a picture as the background, a few white sketch strokes, and ControlNet 1 (the
# tiny ControlNet) guided by the picture's canny edges, shown as its guide layer.
mkdir -p "$demo/config-canvas"
# polyline X,Y X,Y …: one `line` per segment (ImageMagick closes its polylines).
polyline() {
    local previous=""
    for point in "$@"; do
        [ -n "$previous" ] && printf -- '-draw\nline %s %s\n' "$previous" "$point"
        previous="$point"
    done
}
mapfile -t sketch_draws < <(
    polyline 40,350 90,330 140,318 190,322 240,338 290,350 340,346 390,328 440,310 490,302
    polyline 40,300 110,250 170,280 240,210 300,260 360,190 420,240 480,200
    polyline 80,170 80,120 110,95 140,120 140,170 80,170
    printf -- '-draw\ncircle 420,80 448,98\n'
)
convert -size 512x384 xc:none -fill none -stroke white -strokewidth 4 -draw "stroke-linecap round" \
    "${sketch_draws[@]}" "$demo/sketch.png"
sed -e '/^last_recipe/d' "$demo/config/settings.toml" > "$demo/config-canvas/settings.toml"
cat >> "$demo/config-canvas/settings.toml" <<EOF
last_recipe = '{"model":{"path":"$demo/models/tiny-sd15","family":"sd1"},"prompt":"a clay village by a winding river, soft light","negative":"blurry","seed":1234,"sampler":"dpm++2m-karras","steps":12,"cfg":7.0,"width":512,"height":384,"batch":1,"controls":[{"model":"$demo/models/ControlNet/tiny-controlnet-sd15","image":"$fixtures/canny-src-256x192.png","preprocessor":"canny","scale":0.8,"start":0.0,"end":0.9}]}'
EOF

# Text and outpainting: the picture extended by 128 px left and right with the tiny model
# (kiln generate --outpaint), shown at its new size; a text layer on the plain picture.
"$kiln" generate --model "$fixtures/tiny-sd15" --prompt "a clay village by a winding river" \
    --init "$fixtures/canny-src-256x192.png" --outpaint left=128,right=128,overlap=16 \
    --steps 8 --seed 7 --output "$demo/outpainted.png" > /dev/null 2>&1
mkdir -p "$demo/config-outpaint"
sed -e '/^last_recipe/d' "$demo/config/settings.toml" > "$demo/config-outpaint/settings.toml"
cat >> "$demo/config-outpaint/settings.toml" <<EOF
last_recipe = '{"model":{"path":"$demo/models/tiny-sd15","family":"sd1"},"prompt":"a clay village by a winding river","seed":7,"steps":8,"width":512,"height":192,"init":{"path":"$fixtures/canny-src-256x192.png","strength":1.0},"outpaint":{"left":128,"right":128,"top":0,"bottom":0,"overlap":16}}'
EOF

# A folder of photos for the Batch section (run with the restored form while the shot is taken).
mkdir -p "$demo/album"
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
    cp "$fixtures/$( ((i % 2)) && echo init-64.png || echo photo-96x64.png)" "$demo/album/photo-$i.png"
done
printf 'not a picture' > "$demo/album/notes.jpg"

# The Portrait section: the tiny face models and InstantID (its adapter converted the way the
# section's Convert button does) in the model folder, the tiny SDXL as the form's model.
ln -s "$fixtures/tiny-antelopev2" "$demo/models/antelopev2"
mkdir -p "$demo/models/InstantID"
ln -s "$fixtures/tiny-instantid/ControlNetModel" "$demo/models/InstantID/ControlNetModel"
"$kiln" models convert "$fixtures/tiny-instantid/ip-adapter.bin" \
    "$demo/models/InstantID/ip-adapter.safetensors" > /dev/null
mkdir -p "$demo/config-portrait"
sed -e '/^last_recipe/d' "$demo/config/settings.toml" > "$demo/config-portrait/settings.toml"
cat >> "$demo/config-portrait/settings.toml" <<EOF
last_recipe = '{"model":{"path":"$demo/models/tiny-sdxl","family":"sdxl"},"prompt":"","negative":"blurry","seed":1,"sampler":"euler","steps":4,"cfg":5.0,"width":128,"height":128,"batch":1}'
EOF

# The Comic section: the example story with 256x256 panels, drawn with the clay preset on the tiny
# SDXL (found as sd_xl_base_1.0) while the shot waits; an image encoder gives the drift scores.
mkdir -p "$demo/models-comic/Stable-diffusion" "$demo/models-comic/ip-adapter" "$demo/config-comic"
ln -s "$fixtures/tiny-sdxl" "$demo/models-comic/Stable-diffusion/sd_xl_base_1.0"
ln -s "$fixtures/tiny-ip-adapter/image_encoder" "$demo/models-comic/ip-adapter/image_encoder"
sed -e 's/^size: 512x512/size: 256x256/' "$repo/docs/examples/story.txt" > "$demo/story.txt"
sed -e "s|^model_dirs = .*|model_dirs = [\"$demo/models\", \"$demo/models-comic\"]|" \
    "$demo/config/settings.toml" > "$demo/config-comic/settings.toml"

# The Video section: the tiny SVD in the model folder; a draft clip of the photo is made while
# the shot waits and shows in the player.
ln -s "$fixtures/tiny-svd" "$demo/models/tiny-svd"

mkdir -p "$out_dir"

# shoot SECTION LANG FILE [extra env…]: one window, one screenshot.
shoot() {
    local section="$1" lang="$2" file="$3"
    shift 3
    if [ -n "${SECTIONS:-}" ] && [[ " $SECTIONS " != *" $section "* ]]; then
        return 0
    fi
    local log="$demo/log-$section-$lang.txt"
    local before
    before=$(ls "$demo/out" | wc -l)
    env KILN_CONFIG_DIR="$demo/config" KILN_DATA_DIR="$demo/data" XDG_RUNTIME_DIR="$demo/xdg" \
        KILN_SCREENSHOT=1 KILN_SECTION="$section" KILN_LANG="$lang" KILN_TIMING=1 "$@" \
        xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
            "$0" > "$1" 2>&1 &
            pid=$!
            # Wait for the first frame, then for what the shot needs.
            for _ in $(seq 100); do grep -q "first frame" "$1" && break; sleep 0.1; done
            if [ -n "${WAIT_FOR_OUTPUTS:-}" ]; then
                for _ in $(seq 600); do
                    [ "$(ls "$3" | wc -l)" -ge "$WAIT_FOR_OUTPUTS" ] && break
                    sleep 0.1
                done
            fi
            sleep "${SETTLE:-2}"
            import -window root "$2"
            kill "$pid"; wait "$pid" 2> /dev/null || true
        ' "$kiln" "$log" "$file" "$demo/out"
    grep "kiln timing" "$log" | sed "s/^/  $section-$lang: /" || true
    local after
    after=$(ls "$demo/out" | wc -l)
    [ "$after" -ge "$before" ]
}

for lang in en zh-CN; do
    echo "Screenshots ($lang)…"
    count=$(ls "$demo/out" | wc -l)
    # Generate: the restored form queued, shot once its two images are done.
    shoot generate "$lang" "$out_dir/generate-$lang.png" \
        KILN_SUBMIT=1 WAIT_FOR_OUTPUTS=$((count + 2)) SETTLE=2
    # Generate while running: live preview and the queue.
    shoot generate "$lang" "$out_dir/generate-running-$lang.png" KILN_SUBMIT=1 SETTLE=3
    shoot gallery "$lang" "$out_dir/gallery-$lang.png" KILN_SELECT_FIRST=1 SETTLE=3
    shoot models "$lang" "$out_dir/models-$lang.png" SETTLE=3
    shoot settings "$lang" "$out_dir/settings-$lang.png" SETTLE=2
    shoot presets "$lang" "$out_dir/presets-$lang.png" SETTLE=2
    # Comic: the story drawn (about a minute on two cores), its panels, scores and page.
    shoot comic "$lang" "$out_dir/comic-$lang.png" KILN_CONFIG_DIR="$demo/config-comic" \
        KILN_COMIC_SCRIPT="$demo/story.txt" KILN_COMIC_GENERATE=1 SETTLE=75
    # Video: a draft clip of a photo in the player.
    shoot video "$lang" "$out_dir/video-$lang.png" \
        KILN_VIDEO_STILL="$fixtures/photo-600x360-rgba.png" SETTLE=20
    # Portrait: the face photo with its faces found, four portraits with their identity scores.
    count=$(ls "$demo/out" | wc -l)
    shoot portrait "$lang" "$out_dir/portrait-$lang.png" KILN_CONFIG_DIR="$demo/config-portrait" \
        KILN_PORTRAIT_PHOTO="$fixtures/faces-640x480.png" KILN_PORTRAIT_GENERATE=1 \
        WAIT_FOR_OUTPUTS=$((count + 4)) SETTLE=3
    rm -rf "$demo/album-kiln"
    shoot batch "$lang" "$out_dir/batch-$lang.png" KILN_BATCH_INPUT="$demo/album" SETTLE=8
    shoot canvas "$lang" "$out_dir/canvas-$lang.png" KILN_CONFIG_DIR="$demo/config-canvas" \
        KILN_CANVAS_BACKGROUND="$fixtures/canny-src-256x192.png" \
        KILN_CANVAS_SKETCH="$demo/sketch.png" SETTLE=3
    shoot canvas "$lang" "$out_dir/canvas-text-$lang.png" KILN_CONFIG_DIR="$demo/config-canvas" \
        KILN_CANVAS_BACKGROUND="$fixtures/canny-src-256x192.png" \
        KILN_CANVAS_TEXT='新春快乐\nかなカナ · Kiln poster' SETTLE=3
    shoot canvas "$lang" "$out_dir/canvas-outpaint-$lang.png" \
        KILN_CONFIG_DIR="$demo/config-outpaint" KILN_CANVAS_BACKGROUND="$demo/outpainted.png" \
        KILN_CANVAS_TEXT='Kiln 外绘 · アウトペイント' SETTLE=3
done

echo "Wrote:"
ls -1 "$out_dir"/*.png
