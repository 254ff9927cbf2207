"""Colorizing video files: stream frames through the engine and the temporal smoother, keep sound and timing.

    decode thread:  demux -> decode -> RGB -> L (full res)           ┐ bounded queues, so memory does not
    main thread:    batch of L -> Colorizer.chroma -> a/b            │ grow with the video's length and no
    encode thread:  smooth a/b -> merge with the source L -> encode  ┘ frame ever touches the disk

I/O is FFmpeg through PyAV: any container FFmpeg reads in, H.264 (libx264, yuv420p) out, with the source's
exact time base and per-frame timestamps (29.97 stays 30000/1001, the frame count and duration stay the same;
broken source timestamps become even ones at the source's rate), audio packets copied as they are (re-encoded
to AAC only where the output container cannot hold the codec), and the rotation (display matrix), sample aspect
ratio and colour tags kept (BT.709 for untagged HD). With --backend opencv, OpenCV's VideoCapture/VideoWriter do it
(mp4v, no audio, a float frame rate), with a warning.

The output is written to a hidden temp file beside the target and renamed into place only when complete, so
Ctrl-C or a crash never leaves a half-written video under the output name. DeOldify's video path wrote every
frame as a JPEG to disk, dropped the sound and broke on fractional frame rates; none of that happens here.

One module per part:

    config.py     VideoConfig, VideoInfo, VideoResult, VideoError; output paths, checks, publishing
    pipeline.py   colorize_video: the three threads above
    temporal.py   TemporalSmoother: flow-guided smoothing of a/b (the flicker remover)
    backends.py   pick_backend, open_reader/open_writer, check_input
    pyav_io.py    PyAVReader (with its timestamp repair) and PyAVWriter (H.264, colour tags)
    audio.py      AudioCopy: the source's sound into the output
    opencv_io.py  the OpenCV backend (--backend opencv)
"""
from .backends import check_input, open_reader, pick_backend
from .config import (BACKENDS, OUTPUT_EXTENSIONS, X264_PRESETS, VideoConfig, VideoError, VideoInfo, VideoResult,
                     default_output, parse_time)
from .opencv_io import OpenCVReader, OpenCVWriter
from .pipeline import colorize_video
from .pyav_io import PyAVReader, PyAVWriter
from .temporal import DEFAULT_SMOOTH, TemporalSmoother

__all__ = ["BACKENDS", "DEFAULT_SMOOTH", "OUTPUT_EXTENSIONS", "X264_PRESETS", "OpenCVReader", "OpenCVWriter",
           "PyAVReader", "PyAVWriter", "TemporalSmoother", "VideoConfig", "VideoError", "VideoInfo", "VideoResult",
           "check_input", "colorize_video", "default_output", "open_reader", "parse_time", "pick_backend"]
