"""Voice backend for the OpenAI speech API (``audio.speech``) and compatible TTS servers.

The WAV the API sends is written for streaming: its RIFF and data sizes are 0xFFFFFFFF
placeholders, so the ``wave`` module would report a duration of hours. The reply is parsed
chunk by chunk instead, trusting only the bytes actually received, and written back as a
plain 16-bit mono WAV with true sizes.
"""

from __future__ import annotations

import re
import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from generation._openai import make_client
from generation.files import atomic_output
from generation.voice.base import Speech
from story_state.errors import GenerationError

if TYPE_CHECKING:
    from openai import OpenAI

MAX_INPUT_CHARS = 4096  # the speech endpoint's limit
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_UNKNOWN_SIZE = 0xFFFFFFFF
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


class OpenAISpeech:
    """Narration from ``audio.speech.create(..., response_format="wav")``."""

    def __init__(
        self,
        *,
        base_url: str | None,
        model: str = "gpt-4o-mini-tts",
        voice: str = "onyx",
        api_key: str | None,
        instructions: str | None = "Narrate like a 1970s sci-fi radio serial.",
        timeout_s: float = 120,
    ) -> None:
        if not model or not voice:
            raise ValueError("model and voice must not be empty")
        self.model, self.voice, self.instructions = model, voice, instructions
        self._client: OpenAI = make_client(base_url, api_key, timeout_s, "openai voice")

    def close(self) -> None:
        self._client.close()

    def synthesize(self, text: str, out: Path) -> Speech:
        clean = " ".join(_CONTROL.sub(" ", text).split())
        if not clean:
            raise GenerationError("cannot synthesise empty narration")
        if len(clean) > MAX_INPUT_CHARS:
            raise GenerationError(f"narration is {len(clean)} characters; the limit is 4096")
        audio = read_wav(self._speak(clean))
        with atomic_output(out) as tmp, wave.open(str(tmp), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(audio.rate)
            wav.writeframes(audio.samples.tobytes())
        return Speech(path=out, duration_s=audio.duration_s)

    def _speak(self, text: str) -> bytes:
        import openai

        # tts-1 and tts-1-hd reject style instructions
        instructions = self.instructions if not self.model.startswith("tts-1") else None
        try:
            response = self._client.audio.speech.create(
                model=self.model,
                voice=self.voice,
                input=text,
                response_format="wav",
                instructions=instructions or openai.omit,
            )
            return response.content
        except openai.OpenAIError as exc:
            raise GenerationError(f"OpenAI speech request failed: {exc}") from exc


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray[tuple[int], np.dtype[np.int16]]  # mono, 16-bit
    rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate


def read_wav(raw: bytes) -> Audio:
    """Decode a PCM or float WAV, streamed or not, to 16-bit mono; ``GenerationError`` if bad."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise GenerationError(f"the speech endpoint did not return a WAV file ({raw[:4]!r}…)")
    fmt: tuple[int, int, int, int, int] | None = None  # tag, channels, rate, align, bits
    pos = 12
    while pos + 8 <= len(raw):
        chunk, size = raw[pos : pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt " and size >= 16 and body + size <= len(raw):
            tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", raw, body)
            if tag == _EXTENSIBLE and size >= 26:
                tag = struct.unpack_from("<H", raw, body + 24)[0]  # the sub-format GUID's head
            fmt = (tag, channels, rate, align, bits)
        elif chunk == b"data":
            if fmt is None:
                raise GenerationError("WAV data comes before its format chunk")
            end = len(raw) if size == _UNKNOWN_SIZE else min(len(raw), body + size)
            return _decode(raw[body:end], *fmt)
        if size == _UNKNOWN_SIZE or body + size > len(raw):
            break
        pos = body + size + (size & 1)  # chunks are padded to an even length
    raise GenerationError("the WAV file from the speech endpoint has no audio data")


def _decode(data: bytes, tag: int, channels: int, rate: int, align: int, bits: int) -> Audio:
    width = bits // 8
    if channels < 1 or rate <= 0 or width < 1 or align != channels * width:
        raise GenerationError(f"unsupported WAV layout: {channels} ch, {rate} Hz, {bits} bit")
    data = data[: len(data) - len(data) % align]  # a stream cut mid-frame
    if tag == _FLOAT and width in (4, 8):
        wide = np.frombuffer(data, dtype=f"<f{width}").astype(np.float64) * 32767.0
    elif tag == _PCM and width == 1:
        wide = (np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    elif tag == _PCM and width == 3:
        trios = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        packed = trios[:, 0] | (trios[:, 1] << 8) | (trios[:, 2] << 16)
        wide = (np.where(packed >= 1 << 23, packed - (1 << 24), packed) >> 8).astype(np.float64)
    elif tag == _PCM and width in (2, 4):
        shift = 2.0 ** (bits - 16)
        wide = np.frombuffer(data, dtype=f"<i{width}").astype(np.float64) / shift
    else:
        raise GenerationError(f"unsupported WAV encoding: format {tag}, {bits} bit")
    mono = wide.reshape(-1, channels).mean(axis=1)
    samples = np.clip(np.round(mono), -32768, 32767).astype(np.int16)
    if not len(samples):
        raise GenerationError("the speech endpoint returned a WAV file without audio")
    return Audio(samples, rate)
