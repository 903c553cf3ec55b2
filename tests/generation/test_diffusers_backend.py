"""The diffusers image backend, run for real on a tiny random-weight Stable Diffusion pipeline.

The pipeline is built and saved by tests/generation/tiny_models.py and loaded back through
the same ``from_pretrained`` path an operator's model folder takes; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from generation.image.base import ImageRenderer, ImageRequest
from generation.image.diffusers import (
    PIPELINES,
    DiffusersRenderer,
    full_prompt,
    generation_size,
    resolve_dtype,
)
from story_state.errors import BackendUnavailable, GenerationError
from tests import needs
from tests.generation.tiny_models import build_tiny_sd_pipeline

needs.module("diffusers", "pip install 'storybot[diffusers]'")

ROOT = Path(__file__).resolve().parents[2]
W, H = 320, 180
STYLE = "35mm film still, grainy, 1970s sci-fi, "


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    PIPELINES.clear()
    yield build_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd"))
    PIPELINES.clear()


def renderer(model: Path | str, **settings: object) -> DiffusersRenderer:
    options: dict[str, object] = {"steps": 2, "gen_width": 64, "gen_height": 64, **settings}
    return DiffusersRenderer(model=str(model), **options)  # type: ignore[arg-type]


def pixels(path: Path) -> NDArray[np.float32]:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32)


def request(seed: int = 7, prompt: str = "the freighter over the salt flats") -> ImageRequest:
    return ImageRequest(prompt, seed, W, H, style=STYLE)


def test_renders_an_rgb_png_of_the_requested_size(tiny_model: Path, tmp_path: Path) -> None:
    backend: ImageRenderer = renderer(tiny_model)
    out = tmp_path / "stills" / "still.png"
    assert backend.render(request(), out) == out
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(out) as im:
        assert (im.size, im.mode) == ((W, H), "RGB")
    assert pixels(out).std() > 5.0  # not a flat fill
    assert [p.name for p in out.parent.iterdir()] == ["still.png"]  # no temp file left over


def test_same_request_paints_the_same_picture(tiny_model: Path, tmp_path: Path) -> None:
    first = renderer(tiny_model).render(request(), tmp_path / "a.png")
    second = renderer(tiny_model).render(request(), tmp_path / "b.png")
    np.testing.assert_array_equal(pixels(first), pixels(second))


def test_seed_prompt_and_style_each_change_the_picture(tiny_model: Path, tmp_path: Path) -> None:
    backend = renderer(tiny_model)
    base = pixels(backend.render(request(seed=7), tmp_path / "base.png"))
    variants = {
        "seed": request(seed=8),
        "prompt": request(prompt="a colony dome under two moons"),
        "style": ImageRequest(request().prompt, 7, W, H, style="watercolour"),
    }
    for name, varied in variants.items():
        other = pixels(backend.render(varied, tmp_path / f"{name}.png"))
        assert np.abs(base - other).mean() > 1.0, name


def test_an_existing_still_is_replaced(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "still.png"
    out.write_bytes(b"old")
    renderer(tiny_model).render(request(), out)
    assert out.read_bytes().startswith(b"\x89PNG")


def test_pipeline_loads_once_for_renders_and_renderers(tiny_model: Path, tmp_path: Path) -> None:
    PIPELINES.clear()
    loads = PIPELINES.loads
    first, second = renderer(tiny_model), renderer(str(tiny_model) + "/.", steps=3)
    first.render(request(1), tmp_path / "1.png")
    first.render(request(2), tmp_path / "2.png")
    second.render(request(3), tmp_path / "3.png")
    assert PIPELINES.loads == loads + 1
    assert PIPELINES.keys() == [(str(tiny_model.resolve()), "cpu", "float32", "")]


def test_concurrent_first_renders_share_one_load(tiny_model: Path, tmp_path: Path) -> None:
    PIPELINES.clear()
    loads = PIPELINES.loads
    backends = [renderer(tiny_model) for _ in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        outs = list(
            pool.map(lambda i: backends[i].render(request(), tmp_path / f"{i}.png"), range(3))
        )
    assert PIPELINES.loads == loads + 1
    for out in outs[1:]:
        np.testing.assert_array_equal(pixels(outs[0]), pixels(out))


# The sigma-based schedulers (DPM-Solver, Euler, UniPC, LMS) call np.array() on a tensor, and
# torch's Tensor.__array__ has no ``copy`` keyword, which numpy >= 2 reports as deprecated.
@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
def test_a_scheduler_can_be_swapped_in(tiny_model: Path, tmp_path: Path) -> None:
    name = "DPMSolverMultistepScheduler"
    out = renderer(tiny_model, scheduler=name).render(request(), tmp_path / "dpm.png")
    assert pixels(out).std() > 5.0
    pipe = PIPELINES.pipeline((str(tiny_model.resolve()), "cpu", "float32", name))
    assert type(pipe.scheduler).__name__ == name


def test_an_unknown_scheduler_names_the_ones_that_fit(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match=r"NoSuchScheduler.*DDIMScheduler"):
        renderer(tiny_model, scheduler="NoSuchScheduler").render(request(), tmp_path / "x.png")


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "sd15"
    with pytest.raises(GenerationError, match=r"model folder not found: .*models/sd15"):
        renderer(missing).render(request(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_a_device_this_machine_lacks_is_refused_before_loading(
    tiny_model: Path, tmp_path: Path
) -> None:
    loads = PIPELINES.loads
    with pytest.raises(GenerationError, match=r"device 'cuda:99' is not available"):
        renderer(tiny_model, device="cuda:99").render(request(), tmp_path / "x.png")
    assert PIPELINES.loads == loads


def test_a_folder_that_is_not_a_pipeline_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    with pytest.raises(GenerationError, match=r"has no model_index\.json"):
        renderer(tmp_path / "weights").render(request(), tmp_path / "x.png")


@pytest.mark.parametrize(
    ("tensor", "value"),
    [("decoder.conv_out.weight", float("nan")), ("decoder.conv_out.bias", -50.0)],
    ids=["nan", "black"],
)
def test_a_blank_picture_is_an_error_with_a_hint(
    tiny_model: Path, tmp_path: Path, tensor: str, value: float
) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    broken = Path(shutil.copytree(tiny_model, tmp_path / "broken"))
    weights_file = broken / "vae" / "diffusion_pytorch_model.safetensors"
    weights = load_file(weights_file)
    weights["decoder.conv_out.weight"] = torch.zeros_like(weights["decoder.conv_out.weight"])
    weights[tensor] = torch.full_like(weights[tensor], value)
    save_file(weights, weights_file)
    out = tmp_path / "blank.png"
    with pytest.raises(GenerationError, match=r"blank \(NaN or black\).*float32"):
        renderer(broken).render(request(), out)
    assert not out.exists()


def test_missing_libraries_name_the_extra(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)  # what an uninstalled package looks like
    other = Path(shutil.copytree(tiny_model, tmp_path / "copy"))  # not in the cache yet
    with pytest.raises(BackendUnavailable, match=r"pip install 'storybot\[diffusers\]'"):
        renderer(other).render(request(), tmp_path / "x.png")


@pytest.mark.parametrize(
    "settings",
    [
        {"dtype": "float8"},
        {"dtype": "fp16"},
        {"device": "gpu"},
        {"steps": 0},
        {"guidance": -1.0},
        {"gen_width": 100},
        {"gen_height": 0},
        {"scheduler": "not a class"},
        {"model": " "},
    ],
)
def test_bad_settings_fail_at_construction(settings: dict[str, object]) -> None:
    options: dict[str, object] = {"model": "/models/sd15", **settings}
    with pytest.raises(ValueError, match=next(iter(settings))):
        DiffusersRenderer(**options)  # type: ignore[arg-type]


def test_bad_request_sizes_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="width"):
        renderer(tiny_model).render(ImageRequest("x", 1, 8, 180), tmp_path / "x.png")


def test_generation_size_keeps_the_aspect_ratio_on_multiples_of_8() -> None:
    assert generation_size(1280, 720) == (768, 432)
    assert generation_size(720, 1280) == (432, 768)
    assert generation_size(1080, 1080) == (768, 768)
    assert generation_size(1280, 720, long_side=1024) == (1024, 576)
    only_width = DiffusersRenderer(model="m", gen_width=512)
    assert only_width._generation_size(ImageRequest("x", 1, 1280, 720)) == (512, 288)


def test_prompt_is_style_then_shot_and_dtype_follows_the_device() -> None:
    assert full_prompt(STYLE, " a ship ") == "35mm film still, grainy, 1970s sci-fi, a ship"
    assert full_prompt("", "a ship") == "a ship"
    assert resolve_dtype("auto", "cuda:1") == "float16"
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"


def test_loads_offline_without_hf_hub_offline(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """local_files_only alone keeps the hub client off the network.

    huggingface_hub reads HF_HUB_OFFLINE once at import, so this runs in a fresh interpreter
    with the variable unset, an empty Hugging Face cache, and every socket refused.
    """
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    script = textwrap.dedent(
        """
        import socket, sys
        from pathlib import Path
        import pytest_socket

        pytest_socket.disable_socket(allow_unix_socket=True)
        try:
            socket.create_connection(("127.0.0.1", 9))
        except pytest_socket.SocketBlockedError:
            pass
        else:
            sys.exit("sockets are not blocked")

        import generation.image.diffusers as backend
        from generation.image.base import ImageRequest
        from story_state.errors import GenerationError

        assert "torch" not in sys.modules and "diffusers" not in sys.modules, "eager import"
        model, out = sys.argv[1:]
        request = ImageRequest("a ship", 1, 96, 64)
        settings = dict(steps=1, gen_width=64, gen_height=64)
        backend.DiffusersRenderer(model=model, **settings).render(request, Path(out))
        try:
            hub = backend.DiffusersRenderer(model="storybot-tests/not-cached", **settings)
            hub.render(request, Path(out))
        except GenerationError as exc:
            assert "set local_files_only = false to download" in str(exc), exc
        else:
            sys.exit("a hub id that is not cached must fail")
        print("offline ok")
        """
    )
    out = tmp_path / "still.png"
    done = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", script, str(tiny_model), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "offline ok" in done.stdout
    assert pixels(out).shape == (64, 96, 3)
