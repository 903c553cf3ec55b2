"""Stable Diffusion image backend: any diffusers text-to-image pipeline, loaded once and reused.

torch and diffusers are the optional extra ``storybot[diffusers]``; they are imported on the
first render, never at import time. Seeds are the caller's: the story layer keeps one per
character or shot in ``ImageRequest.seed``, and the same request always paints the same picture.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image, ImageOps

from generation.image.base import ImageRequest
from story_state.errors import BackendUnavailable, GenerationError

log = logging.getLogger(__name__)

DTYPES: Final = ("auto", "float16", "bfloat16", "float32")
DEVICE_PATTERN: Final = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEFAULT_LONG_SIDE: Final = 768  # SD 1.x/2.x-friendly; set gen_width/gen_height for SDXL & co.
MIN_SIDE, MAX_SIDE = 16, 4096
LOW_GPU_MEMORY: Final = 8 * 1024**3  # below this, slice attention to fit
_INSTALL: Final = "pip install 'storybot[diffusers]'"
_HUB_ID = re.compile(r"\w[\w.-]*(/\w[\w.-]*)?")  # "owner/name", never "./x" or "/x"
# An 8-bit picture that never rises above this is black: a fp16 overflow, not a dark scene.
_BLACK: Final = 2 / 255


@dataclass
class _Entry:
    """One loaded pipeline; its lock serialises loading and every call into it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    pipe: Any = None  # a diffusers DiffusionPipeline (untyped enough to be Any here)


class PipelineCache:
    """Pipelines by (model, device, dtype, scheduler), shared by every renderer in the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str, str], _Entry] = {}
        self.loads = 0  # how many times a pipeline was actually read from disk

    def get(self, key: tuple[str, str, str, str], load: Callable[[], Any]) -> _Entry:
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
        with entry.lock:
            if entry.pipe is None:  # a failed load leaves it empty, so the next render retries
                entry.pipe = load()
                with self._lock:
                    self.loads += 1
        return entry

    def pipeline(self, key: tuple[str, str, str, str]) -> Any:
        """The loaded pipeline for ``key``, or None."""
        with self._lock:
            entry = self._entries.get(key)
        return None if entry is None else entry.pipe

    def keys(self) -> list[tuple[str, str, str, str]]:
        with self._lock:
            return [key for key, entry in self._entries.items() if entry.pipe is not None]

    def clear(self) -> None:
        """Forget every pipeline (renderers already holding one keep it until they go)."""
        with self._lock:
            self._entries.clear()


PIPELINES: Final = PipelineCache()


def _import(name: str) -> Any:
    """The module ``name`` from the optional extra (as Any: its API is used dynamically)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"the diffusers image backend needs {name}, which is not installed: {_INSTALL}"
        ) from exc


def generation_size(width: int, height: int, long_side: int = DEFAULT_LONG_SIDE) -> tuple[int, int]:
    """The request's aspect ratio with its long side at ``long_side``, both multiples of 8."""
    scale = long_side / max(width, height)
    return max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8)


def _check_side(name: str, value: int | None) -> None:
    if value is not None and (value % 8 or not 8 <= value <= MAX_SIDE):
        raise ValueError(f"diffusers {name} must be a multiple of 8 in 8..{MAX_SIDE}, got {value}")


class DiffusersRenderer:
    """Paints stills with a Stable-Diffusion-family pipeline from a folder or a hub id.

    ``model`` is a diffusers pipeline folder (with ``model_index.json``) or a hub id such as
    ``stabilityai/sd-turbo``; a hub id is only downloaded when ``local_files_only`` is false,
    otherwise it must already be in the Hugging Face cache. ``scheduler`` optionally names a
    diffusers scheduler class (``"DPMSolverMultistepScheduler"``) to swap in.
    """

    def __init__(
        self,
        *,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        steps: int = 25,
        guidance: float = 7.0,
        negative_prompt: str = "text, letters, watermark, logo, blurry, deformed",
        gen_width: int | None = None,
        gen_height: int | None = None,
        local_files_only: bool = True,
        scheduler: str | None = None,
    ) -> None:
        if not model.strip():
            raise ValueError("diffusers model must name a folder or a hub id")
        if dtype not in DTYPES:
            raise ValueError(f"diffusers dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
        if not DEVICE_PATTERN.fullmatch(device):
            raise ValueError(
                f"diffusers device must be auto, cpu, mps, cuda or cuda:N; got {device!r}"
            )
        if steps < 1:
            raise ValueError(f"diffusers steps must be at least 1, got {steps}")
        if guidance < 0:
            raise ValueError(f"diffusers guidance must not be negative, got {guidance}")
        if scheduler is not None and not scheduler.isidentifier():
            raise ValueError(f"diffusers scheduler must be a class name, got {scheduler!r}")
        _check_side("gen_width", gen_width)
        _check_side("gen_height", gen_height)
        self.model, self.device, self.dtype = model, device, dtype
        self.steps, self.guidance, self.negative_prompt = steps, guidance, negative_prompt
        self.gen_width, self.gen_height = gen_width, gen_height
        self.local_files_only, self.scheduler = local_files_only, scheduler
        self._lock = threading.Lock()
        self._entry: _Entry | None = None
        self._device = ""  # resolved on first render

    def render(self, request: ImageRequest, out: Path) -> Path:
        for side, name in ((request.width, "width"), (request.height, "height")):
            if not MIN_SIDE <= side <= MAX_SIDE:
                raise GenerationError(
                    f"diffusers image {name} must be {MIN_SIDE}..{MAX_SIDE} px, got {side}"
                )
        entry = self._pipeline()
        torch = _import("torch")
        width, height = self._generation_size(request)
        # The starting noise is drawn on the CPU so a seed gives the same picture's layout on
        # every device (diffusers' own advice); the seed is the caller's, kept per shot.
        generator = torch.Generator(device="cpu").manual_seed(request.seed % 2**64)
        try:
            with entry.lock, torch.inference_mode():
                result = entry.pipe(
                    prompt=full_prompt(request.style, request.prompt),
                    negative_prompt=self.negative_prompt or None,
                    num_inference_steps=self.steps,
                    guidance_scale=self.guidance,
                    width=width,
                    height=height,
                    generator=generator,
                    output_type="np",
                )
        except (RuntimeError, ValueError, TypeError) as exc:
            raise GenerationError(f"diffusers pipeline {self.model!r} failed: {exc}") from exc
        image = self._to_image(result)
        fitted = ImageOps.fit(image, (request.width, request.height), Image.Resampling.LANCZOS)
        _write_png(fitted, out)
        return out

    def _generation_size(self, request: ImageRequest) -> tuple[int, int]:
        width, height = generation_size(request.width, request.height)
        if self.gen_width and self.gen_height:
            return self.gen_width, self.gen_height
        if self.gen_width:  # keep the request's aspect ratio around the side that was given
            return self.gen_width, max(8, round(self.gen_width * height / width / 8) * 8)
        if self.gen_height:
            return max(8, round(self.gen_height * width / height / 8) * 8), self.gen_height
        return width, height

    def _to_image(self, result: Any) -> Image.Image:
        flagged = getattr(result, "nsfw_content_detected", None)
        if flagged and any(flagged):
            raise GenerationError(
                "the pipeline's safety checker blanked the picture; try another prompt or seed"
            )
        pixels = np.asarray(result.images[0], dtype=np.float32)
        if not np.isfinite(pixels).all() or float(pixels.max(initial=0.0)) < _BLACK:
            raise GenerationError(
                f"diffusers model {self.model!r} produced a blank (NaN or black) picture, "
                f'usually a float16 overflow: try dtype = "float32"'
            )
        rgb = (pixels.clip(0.0, 1.0) * 255.0).round().astype(np.uint8)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise GenerationError(f"diffusers pipeline returned an image of shape {rgb.shape}")
        return Image.fromarray(rgb)

    def _pipeline(self) -> _Entry:
        with self._lock:
            if self._entry is None:
                torch = _import("torch")
                self._device = resolve_device(self.device, torch)
                _check_device(self._device, torch)
                dtype = resolve_dtype(self.dtype, self._device)
                key = (_model_key(self.model), self._device, dtype, self.scheduler or "")
                self._entry = PIPELINES.get(key, lambda: self._load(self._device, dtype))
            return self._entry

    def _load(self, device: str, dtype: str) -> Any:
        torch, diffusers = _import("torch"), _import("diffusers")
        source = _model_source(self.model)
        log.info("loading diffusers model %s on %s as %s", source, device, dtype)
        try:
            pipe = diffusers.AutoPipelineForText2Image.from_pretrained(
                source,
                **{_dtype_argument(diffusers.__version__): getattr(torch, dtype)},
                local_files_only=self.local_files_only,
            )
        except ImportError as exc:
            raise BackendUnavailable(f"diffusers model {source!r} needs {exc}: {_INSTALL}") from exc
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            hint = ""
            if self.local_files_only and not Path(source).is_dir():
                hint = (
                    "; there is no such folder and it is not in the local Hugging Face cache: "
                    "point model at a pipeline folder, or set local_files_only = false to download"
                )
            raise GenerationError(
                f"could not load diffusers model {source!r}: {exc}{hint}"
            ) from exc
        if self.scheduler:
            pipe.scheduler = _scheduler(diffusers, self.scheduler, pipe.scheduler)
        try:
            pipe = pipe.to(device)
            if _low_memory(device, torch):
                pipe.enable_attention_slicing()
        except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
            raise GenerationError(
                f"diffusers model {source!r} cannot run on {device} as {dtype}: {exc}"
            ) from exc
        pipe.set_progress_bar_config(disable=True)
        # The safety checker, if the pipeline ships one, stays as it is; _to_image reports it.
        return pipe


def full_prompt(style: str, prompt: str) -> str:
    """The story's style prefix, then the shot's prompt: ``"35mm film still, grainy, …"``."""
    parts = (style.strip().rstrip(",").strip(), prompt.strip())
    return ", ".join(part for part in parts if part)


def resolve_device(device: str, torch: Any) -> str:
    """``auto`` → cuda if there is one, else Apple's mps, else cpu."""
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto`` → float16 on CUDA (half the memory, fast), float32 elsewhere."""
    if dtype != "auto":
        return dtype
    return "float16" if device.startswith("cuda") else "float32"


def _dtype_argument(version: str) -> str:
    """diffusers 0.40 renamed ``torch_dtype`` to ``dtype`` (the old name now warns)."""
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    return "dtype" if (major, minor) >= (0, 40) else "torch_dtype"


def _check_device(device: str, torch: Any) -> None:
    """Refuse a device this machine lacks before spending minutes loading weights."""
    kind, _, index = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(index or 0) >= count:
            raise GenerationError(
                f"diffusers device {device!r} is not available here ({count} CUDA device(s)); "
                'set device = "auto" or "cpu"'
            )
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise GenerationError('diffusers device "mps" is not available here; set device = "auto"')


def _low_memory(device: str, torch: Any) -> bool:
    if device.startswith("cuda"):
        return bool(torch.cuda.get_device_properties(device).total_memory < LOW_GPU_MEMORY)
    return True  # CPU and mps share system memory: slicing keeps the peak small


def _model_key(model: str) -> str:
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def _model_source(model: str) -> str:
    """A pipeline folder (checked here, with a clear message) or a hub id left to diffusers."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise GenerationError(
                f"diffusers model folder {path} has no model_index.json: "
                "it must be a folder written by a pipeline's save_pretrained()"
            )
        return str(path)
    if path.exists():
        raise GenerationError(f"diffusers model {path} is a file; it must be a pipeline folder")
    if not _HUB_ID.fullmatch(model):
        raise GenerationError(f"diffusers model folder not found: {path}")
    return model


def _scheduler(diffusers: Any, name: str, current: Any) -> Any:
    cls = getattr(diffusers, name, None)
    compatible = sorted(c.__name__ for c in getattr(current, "compatibles", ()))
    if cls is None or not hasattr(cls, "from_config"):
        raise GenerationError(
            f"unknown diffusers scheduler {name!r}; this model works with {', '.join(compatible)}"
        )
    return cls.from_config(current.config)


def _write_png(image: Image.Image, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="PNG")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a still is meant to be shared
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
