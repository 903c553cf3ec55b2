"""Coqui TTS voice backend: a model folder (VITS & co.), a narrator, optional character voices.

coqui-tts and torch are the optional extra ``storybot[coqui]``, imported on first use. The
folder is what Coqui's downloader leaves behind (``model.pth`` or ``model_file.pth``,
``config.json``, maybe ``speaker_ids.json``/``speakers.pth``) and may be moved anywhere: files
the config names by a stale absolute path are looked for beside the model instead. Each model
is loaded once per process and device. A sentence's noise is seeded from its words and speaker,
so the same script always gives the same audio.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import tempfile
import threading
import wave
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from generation.voice.base import Speech
from generation.voice.roles import split_voices
from generation.voice.treatment import TREATMENTS, Treatment, apply_treatment, text_seed
from story_state.errors import BackendUnavailable, GenerationError

log = logging.getLogger(__name__)

DEVICE_PATTERN: Final = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
SENTENCE_PAUSE_S: Final = 0.25
TURN_PAUSE_S: Final = 0.45  # between the narrator and a character, either way
MAX_CHUNK_CHARS: Final = 300  # longer sentences are cut at commas, then spaces
PEAK: Final = 0.9  # output is scaled to this peak, like Coqui's own save_wav
_INSTALL: Final = "pip install 'storybot[coqui]'"
_MODEL_NAMES: Final = ("model_file.pth", "model_file.pth.tar", "model.pth", "checkpoint.pth")
_AUX_NAMES: Final = {"speakers.pth", "speaker_ids.pth", "model_se.pth", "model_se.pth.tar"}
# config.json fields holding file paths, and the names Coqui's downloader gives those files.
_PATH_FIELDS: Final = {
    "speakers_file": ("speaker_ids.json", "speaker_ids.pth", "speakers.json", "speakers.pth"),
    "d_vector_file": ("speakers.json", "speakers.pth"),
    "language_ids_file": ("language_ids.json",),
    "speaker_encoder_model_path": ("model_se.pth", "model_se.pth.tar"),
    "speaker_encoder_config_path": ("config_se.json",),
}
_SWITCHES: Final = {  # a path field only matters when its switch is on
    "speakers_file": "use_speaker_embedding",
    "d_vector_file": "use_d_vector_file",
    "language_ids_file": "use_language_embedding",
}
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")

_MODEL_ERRORS: Final = (RuntimeError, ValueError, KeyError, IndexError, TypeError, AssertionError)

Audio = NDArray[np.float32]


def _import(name: str) -> Any:
    """A module of the optional extra, as Any: coqui-tts ships no type information."""
    try:
        return importlib.import_module(name)
    except (ImportError, OSError) as exc:  # OSError: a torch build whose native libs won't load
        raise BackendUnavailable(f"the Coqui voice needs {name} ({exc}): {_INSTALL}") from exc


@dataclass
class CoquiModel:
    """One loaded Synthesizer; its lock serialises every call into it."""

    folder: Path
    device: str
    synthesizer: Any  # TTS.utils.synthesizer.Synthesizer
    sample_rate: int
    speakers: tuple[str, ...]  # () for a single-speaker model
    languages: tuple[str, ...]
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check_speaker(self, speaker: str, role: str) -> None:
        if self.speakers and speaker not in self.speakers:
            raise GenerationError(
                f"{role} {speaker!r} is not a speaker of the Coqui model in {self.folder}; "
                f"known speakers: {_listing(self.speakers)}"
            )

    def language_for(self, language: str | None) -> str | None:
        if len(self.languages) <= 1:
            return None  # the model speaks one language and picks it itself
        if language not in self.languages:
            asked = "no language was set" if language is None else f"not {language!r}"
            raise GenerationError(
                f"the Coqui model in {self.folder} speaks {_listing(self.languages)}, "
                f"{asked}: set [generation.voice] language"
            )
        return language

    def speak(self, text: str, speaker: str | None, language: str | None) -> Audio:
        """One chunk of text as float samples, without Coqui's trailing silence."""
        torch, module = _import("torch"), _import("TTS.utils.synthesizer")
        devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        with self.lock, torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(zlib.crc32(f"{speaker}\0{text}".encode()))
            try:
                wav = self.synthesizer.tts(
                    text=text, speaker_name=speaker, language_name=language, split_sentences=False
                )
            except _MODEL_ERRORS as exc:  # text or a speaker the model cannot take
                raise GenerationError(f"Coqui model in {self.folder} failed: {exc}") from exc
        samples = np.asarray(wav, dtype=np.float32).reshape(-1)
        pad = int(getattr(module, "PAD_SILENCE_SAMPLES", 0))
        if 0 < pad < samples.size and not samples[-pad:].any():
            samples = samples[:-pad]
        return samples


class ModelCache:
    """Models by (folder, device), shared by every CoquiVoice in the process.

    Loads are rare and slow; one lock held while loading keeps two threads from loading twice.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[Path, str], CoquiModel] = {}
        self.loads = 0  # how many times a model was actually read from disk

    def get(self, key: tuple[Path, str], load: Callable[[], CoquiModel]) -> CoquiModel:
        with self._lock:
            if key not in self._entries:  # a failed load stores nothing: the next call retries
                self._entries[key] = load()
                self.loads += 1
            return self._entries[key]


MODELS: Final = ModelCache()


def load_model(model_dir: Path, device: str = "auto") -> CoquiModel:
    """The model in ``model_dir`` on ``device`` (``auto``: cuda if there is one), loaded once."""
    torch = _import("torch")
    resolved = resolve_device(device, torch)
    folder = model_dir.expanduser().resolve()
    return MODELS.get((folder, resolved), lambda: _load(folder, resolved, torch))


def resolve_device(device: str, torch: Any) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GenerationError(f"Coqui device {device!r} was asked for, but torch sees no GPU")
    return device


def _load(folder: Path, device: str, torch: Any) -> CoquiModel:
    checkpoint = find_checkpoint(folder)
    config = _read_config(folder)
    synthesizer_class = _import("TTS.utils.synthesizer").Synthesizer
    log.info("loading Coqui model %s on %s", checkpoint, device)
    with tempfile.TemporaryDirectory(prefix="storybot-coqui-") as scratch:
        config_path = folder / "config.json"
        if _relocate(config, folder):  # the operator's folder stays untouched
            config_path = Path(scratch) / "config.json"
            config_path.write_text(json.dumps(config), encoding="utf-8")
        try:
            synth = synthesizer_class(tts_checkpoint=checkpoint, tts_config_path=config_path)
            synth.to(torch.device(device))
        except ImportError as exc:
            raise BackendUnavailable(f"Coqui model in {folder} needs {exc}: {_INSTALL}") from exc
        except Exception as exc:  # the library raises anything from KeyError to pickle errors
            raise GenerationError(
                f"cannot load the Coqui model in {folder} ({checkpoint.name} + config.json): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    model = synth.tts_model
    speakers = getattr(getattr(model, "speaker_manager", None), "speaker_names", None) or ()
    languages = getattr(getattr(model, "language_manager", None), "language_names", None) or ()
    names = tuple(map(str, speakers)) if len(speakers) > 1 else ()
    rate = int(synth.output_sample_rate)
    return CoquiModel(folder, device, synth, rate, names, tuple(map(str, languages)))


def find_checkpoint(folder: Path) -> Path:
    """The model file in a Coqui model folder, by Coqui's own names or as the only ``*.pth``."""
    if not folder.is_dir():
        raise GenerationError(f"Coqui model folder not found: {folder}")
    for name in _MODEL_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.name.endswith((".pth", ".pth.tar", ".pt")))
    candidates = [p for p in found if p.name not in _AUX_NAMES]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise GenerationError(
            f"Coqui model folder {folder} has no model file "
            f"(looked for {', '.join(_MODEL_NAMES)} or a single *.pth)"
        )
    names = ", ".join(p.name for p in candidates)
    raise GenerationError(f"Coqui model folder {folder} holds several model files ({names})")


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise GenerationError(f"Coqui model folder {folder} has no config.json")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GenerationError(f"cannot read {path}: {exc}") from exc
    if not isinstance(config, dict) or "model" not in config:
        raise GenerationError(f'{path} is not a Coqui TTS config (no "model" key)')
    return config


def _relocate(config: dict[str, Any], folder: Path) -> bool:
    """Point file fields whose path no longer exists at the same file in ``folder``.

    A file the model needs (its switch is on, or it has no switch) that cannot be found stops
    the load here, by name, rather than deep inside coqui-tts.
    """
    changed = False
    model_args = config.get("model_args")
    args: dict[str, Any] = model_args if isinstance(model_args, dict) else {}
    for section in (config, args):
        for key, defaults in _PATH_FIELDS.items():
            value = section.get(key)
            olds = value if isinstance(value, list) else [value]
            if not olds or not all(isinstance(old, str) and old for old in olds):
                continue
            switch = _SWITCHES.get(key)
            needed = switch is None or bool(config.get(switch) or args.get(switch))
            news = [_beside(folder, str(old), key, defaults, needed) for old in olds]
            changed |= news != olds
            section[key] = news if isinstance(value, list) else news[0]
    return changed


def _beside(folder: Path, old: str, key: str, defaults: tuple[str, ...], needed: bool) -> str:
    path = Path(old) if Path(old).is_absolute() else folder / old
    if path.is_file():
        return str(path)
    names = (Path(old).name, *defaults)
    found = next((folder / name for name in names if (folder / name).is_file()), None)
    if found is None and needed:
        raise GenerationError(
            f"Coqui model folder {folder} lacks {Path(old).name}, which config.json names as {key}"
        )
    return str(found) if found is not None else old


class CoquiVoice:
    """Narration from a Coqui TTS model folder, with optional per-character speakers.

    ``speaker`` is the narrator (multi-speaker models; default their first speaker). A line
    ``NAME: words`` or a span ``NAME: "words"`` whose NAME is a key of ``character_voices`` is
    spoken by that speaker. A single-speaker model ignores both choices (and still drops the
    ``NAME:`` labels).
    """

    def __init__(
        self,
        *,
        model_dir: Path,
        speaker: str | None = None,
        character_voices: Mapping[str, str] | None = None,
        language: str | None = None,
        device: str = "auto",
        treatment: Treatment = "none",
    ) -> None:
        if not DEVICE_PATTERN.fullmatch(device):
            raise ValueError(f"Coqui device must be auto, cpu, mps, cuda or cuda:N; got {device!r}")
        if treatment not in TREATMENTS:
            raise ValueError(f"treatment must be one of {', '.join(TREATMENTS)}; got {treatment!r}")
        voices = {name.strip(): voice for name, voice in (character_voices or {}).items()}
        if any(not name or ":" in name or not voice for name, voice in voices.items()):
            raise ValueError("character_voices needs non-empty names (no ':') and speakers")
        self.model_dir, self.speaker, self.language = Path(model_dir), speaker, language
        self.character_voices, self.device, self.treatment = voices, device, treatment

    @property
    def model(self) -> CoquiModel:
        """The shared loaded model (loads it on first use)."""
        return load_model(self.model_dir, self.device)

    def synthesize(self, text: str, out: Path) -> Speech:
        clean = "\n".join(" ".join(line.split()) for line in _CONTROL.sub(" ", text).splitlines())
        if not clean.strip():
            raise GenerationError("cannot synthesise empty narration")
        model = self.model
        narrator, characters = self._cast(model)
        language = model.language_for(self.language)
        pieces: list[Audio] = []
        previous: str | None = None
        for who, words in split_voices(clean, self.character_voices):
            speaker = characters.get(who, narrator) if who is not None else narrator
            for chunk in split_sentences(words):
                if pieces:
                    pause = TURN_PAUSE_S if speaker != previous else SENTENCE_PAUSE_S
                    pieces.append(np.zeros(round(pause * model.sample_rate), dtype=np.float32))
                pieces.append(model.speak(chunk, speaker, language))
                previous = speaker
        if not pieces:
            raise GenerationError(f"nothing speakable in the narration: {text[:80]!r}")
        audio = np.concatenate(pieces)
        if audio.size == 0 or not np.isfinite(audio).all():
            raise GenerationError(f"the Coqui model in {model.folder} produced no usable audio")
        return self._write(audio, model.sample_rate, out, text)

    def _cast(self, model: CoquiModel) -> tuple[str | None, dict[str, str]]:
        """The narrator's speaker and each character's (None, {} on a one-speaker model)."""
        if not model.speakers:
            if self.speaker or self.character_voices:
                log.info("Coqui model in %s has one speaker; speaker choices ignored", model.folder)
            return None, {}
        narrator = self.speaker or model.speakers[0]
        model.check_speaker(narrator, "speaker")
        for name, voice in self.character_voices.items():
            model.check_speaker(voice, f"character_voices[{name!r}]")
        return narrator, dict(self.character_voices)

    def _write(self, audio: Audio, rate: int, out: Path, text: str) -> Speech:
        peak = float(np.abs(audio).max())
        scaled = audio * (PEAK / peak) if peak > 0 else audio
        pcm = (np.clip(scaled, -1.0, 1.0) * 32767).round().astype("<i2")
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".wav", dir=out.parent)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh, wave.open(fh, "wb") as wav:
                wav.setparams((1, 2, rate, pcm.size, "NONE", "not compressed"))
                wav.writeframes(pcm.tobytes())
            if self.treatment != "none":
                apply_treatment(tmp, out, self.treatment, seed=text_seed(text))
            else:
                os.chmod(tmp, 0o644)
                os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        return Speech(path=out, duration_s=pcm.size / rate)  # treatments keep every frame


def split_sentences(text: str, limit: int = MAX_CHUNK_CHARS) -> list[str]:
    """Sentences of ``text``, long ones cut at commas or spaces; unspeakable bits dropped."""
    chunks: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        while len(sentence) > limit:
            cut = max(sentence.rfind(sep, 0, limit) for sep in (", ", "; ", ": "))
            if cut < limit // 2:  # no clause break in reach: the last space will do
                cut = sentence.rfind(" ", 0, limit)
            cut = cut + 1 if cut > 0 else limit
            chunks.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        chunks.append(sentence.strip())
    return [c for c in chunks if any(ch.isalnum() for ch in c)]


def _listing(names: tuple[str, ...], most: int = 30) -> str:
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown}, … ({len(names)} in all)"
