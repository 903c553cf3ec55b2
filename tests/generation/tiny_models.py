"""Tiny random-weight models saved the way real ones ship, so tests load them like an operator.

Nothing here downloads anything: every component is built from a config written in this file,
with a byte-level BPE vocabulary made on the spot for the CLIP tokenizer.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

# A handful of merges so the tokenizer does real BPE work; the rest of the text falls back
# to single byte-level symbols, which are all in the vocabulary.
_MERGES = [
    ("t", "h"),
    ("th", "e</w>"),
    ("a", "n"),
    ("i", "n"),
    ("e", "r"),
    ("o", "n</w>"),
    ("s", "t"),
    ("a", "r"),
    ("i", "n</w>"),
    ("s", "h"),
    ("sh", "i"),
    ("shi", "p</w>"),
    ("f", "i"),
    ("fi", "l"),
    ("fil", "m</w>"),
]
VOCAB_SIZE = 1000


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's byte-to-unicode table: one printable symbol for each of the 256 bytes."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    symbols, extra = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def write_tiny_clip_vocab(folder: Path) -> tuple[Path, Path]:
    """Write ``vocab.json`` and ``merges.txt`` for a tiny CLIP BPE into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    tokens = [*symbols, *(s + "</w>" for s in symbols)]
    tokens += ["".join(pair) for pair in _MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) <= VOCAB_SIZE
    vocab = {token: i for i, token in enumerate(tokens)}
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in _MERGES)]
    merges_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return vocab_path, merges_path


def _tiny_tokenizer(scratch: Path) -> Any:
    from transformers import CLIPTokenizer

    vocab_path, merges_path = write_tiny_clip_vocab(scratch)
    # transformers 5 builds CLIPTokenizer from ``vocab``/``merges`` (``vocab_file=`` is ignored);
    # both may be given as in-memory objects or, as here, as the files' paths.
    return CLIPTokenizer(vocab=str(vocab_path), merges=str(merges_path), model_max_length=77)


def build_tiny_sd_pipeline(folder: Path) -> Path:
    """Save a tiny random-weight StableDiffusionPipeline into ``folder`` and return it.

    Same structure as a real SD 1.x checkpoint (``model_index.json``, ``unet/``, ``vae/``,
    ``text_encoder/``, ``tokenizer/``, ``scheduler/``), a few hundred kB of weights, and no
    safety checker. Seeded, so the same call writes the same weights.
    """
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    diffusers: Any = importlib.import_module("diffusers")  # its constructors are untyped
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=2,
    )
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=64,
    )
    tokenizer = _tiny_tokenizer(folder / "tokenizer")
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            layer_norm_eps=1e-5,
            vocab_size=VOCAB_SIZE,
            max_position_embeddings=77,
        )
    )
    scheduler = diffusers.DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder
