"""The source's sound in the output: every audio stream, packets copied as they are where the output container can
hold the codec, else decoded and re-encoded to AAC; cut to the colorized slice and interleaved with the video."""
from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

from .config import first_line

log = logging.getLogger("recolor")

_STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


class AudioCopy:
    """Reads the source's audio streams (a second demuxer on the same file, so the video path never waits on
    audio) and muxes them into the output: packets copied where the container can hold the codec, else
    decoded and re-encoded to AAC. Trimmed to [offset, end) and shifted so the output starts at offset."""

    def __init__(self, source: Path, out, offset_s: float, end_s: float | None, trimmed: bool):
        import av
        self.container = av.open(str(source))
        self.offset_s, self.end_s, self.trimmed = offset_s, end_s, trimmed
        self.routes = {}  # source stream -> (output stream, None to copy packets or a resampler to re-encode)
        for stream in self.container.streams.audio:
            try:
                self.routes[stream] = (out.add_stream_from_template(stream), None)
            except ValueError:  # a codec the container cannot hold, e.g. 8-bit PCM into mp4
                rate = stream.codec_context.sample_rate or 48000
                # the standard layout for the channel count: AAC refuses unordered ones ("1 channels")
                layout = _STANDARD_LAYOUTS.get(stream.codec_context.channels, "stereo")
                enc = out.add_stream("aac", rate=rate)
                enc.format, enc.layout = "fltp", layout
                self.routes[stream] = (enc, av.AudioResampler(format="fltp", layout=layout, rate=rate))
        self.summary = _audio_summary(self.routes)
        self.packets = self._packets() if self.routes else iter(())
        self._pending = None

    def _packets(self):
        import av
        if self.offset_s > 0:
            self.container.seek(int(self.offset_s * 1e6), backward=True)  # AV_TIME_BASE units
        try:
            for packet in self.container.demux(*self.routes):
                if packet.dts is not None or packet.pts is not None:
                    yield packet
        except av.error.FFmpegError as e:
            log.warning("audio: stopped at a damaged part of the file (%s)", first_line(e))

    def pump(self, until_s: float) -> None:
        """Mux every audio packet that starts before until_s."""
        while True:
            packet = self._pending or next(self.packets, None)
            self._pending = None
            if packet is None:
                return
            tb = packet.time_base
            t = float((packet.pts if packet.pts is not None else packet.dts) * tb)
            if t >= until_s:
                self._pending = packet
                return
            self._mux(packet, t, tb)

    def _mux(self, packet, t: float, tb: Fraction) -> None:
        # Untrimmed, every packet goes, priming packets at negative pts included (the decoded samples then
        # match the source's exactly); a slice keeps packets that start inside it.
        if self.trimmed and (t < self.offset_s - 1e-6 or (self.end_s is not None and t >= self.end_s - 1e-6)):
            return
        out_stream, resampler = self.routes[packet.stream]
        shift = int(round(self.offset_s / tb))
        if resampler is None:
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts = None if packet.dts is None else packet.dts - shift
            packet.stream = out_stream
            out_stream.container.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None if frame.pts is None else frame.pts - shift
            for converted in resampler.resample(frame):
                out_stream.container.mux(out_stream.encode(converted))

    def close(self) -> None:
        if self.container is None:
            return
        for out_stream, resampler in self.routes.values():
            if resampler is not None:
                try:
                    for converted in resampler.resample(None):
                        out_stream.container.mux(out_stream.encode(converted))
                    out_stream.container.mux(out_stream.encode(None))
                except Exception as e:  # flushing an encoder that never started
                    log.debug("audio flush: %s", e)
        self.container.close()
        self.container = None


def _audio_summary(routes: dict) -> str:
    if not routes:
        return "no audio in the source"
    copied = sum(1 for _, resampler in routes.values() if resampler is None)
    parts = ([f"{copied} audio stream{'s' * (copied > 1)} copied"] if copied else []) + (
        [f"{len(routes) - copied} re-encoded to AAC"] if len(routes) > copied else [])
    return ", ".join(parts)
