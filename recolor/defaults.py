"""The settings every interface shares, stated once: the CLI's options, the web server's forms and the
library's own defaults all read them from here.

Deliberately light (no numpy, cv2 or torch), so `recolor --help` and the web server read it instantly.
"""
RENDER_FACTOR_MIN, RENDER_FACTOR_MAX = 7, 64  # render size = factor × 16 px: 112 to 1024 px
PHOTO_RENDER_FACTOR = 35  # 560 px
FILM_RENDER_FACTOR = 21  # DeOldify's video default: lower than photos, fast and steadier
BATCH_SIZE = 4  # images or frames per network call
MAX_PIXELS = 100_000_000  # 100 MP: a 10000×10000 scan still passes; decompression bombs do not

X264_CRF = 18  # H.264 quality: 18 is visually lossless, 23 is FFmpeg's default
# x264 preset: at crf 18 on a 640×480 camera clip, "faster" took 65% of "medium"'s encode time for the same size
# (+0.3%) and 0.09 dB less PSNR; the encoder shares film's two cores with the network (benchmarks/README.md)
X264_PRESET = "faster"

OUTPUT_SUFFIX = "_color"  # <name>_color<ext> beside the input; a film's <stem>_color.mp4
COMPARE_SUFFIX = "_compare"  # <name>_compare<ext>: the before|after sheet of --compare
