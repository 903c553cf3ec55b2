"""A tiny random-weight Coqui VITS model saved the way an operator's downloaded model folder is."""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SAMPLE_RATE = 16_000
SPEAKERS_FILE = "speaker_ids.json"  # the name Coqui's model manager gives a VITS speaker map


def build_tiny_vits(folder: Path, speakers: Sequence[str] = (), seed: int = 0) -> Path:
    """Write ``model.pth`` + ``config.json`` (+ ``speaker_ids.json``) into ``folder``; return it.

    Characters only (no phonemizer), a 64-sample hop and one layer everywhere, so a sentence
    synthesises in milliseconds on a CPU. With two or more ``speakers`` the model gets a
    speaker-embedding table, and the config points at the speaker map by absolute path, as
    Coqui's downloader writes it.
    """
    import torch

    # coqui-tts ships no type information: its classes are used as Any.
    shared: Any = importlib.import_module("TTS.config.shared_configs")
    tts_shared: Any = importlib.import_module("TTS.tts.configs.shared_configs")
    vits_config: Any = importlib.import_module("TTS.tts.configs.vits_config")
    vits: Any = importlib.import_module("TTS.tts.models.vits")

    folder.mkdir(parents=True, exist_ok=True)
    multi = len(speakers) > 1
    speakers_path = folder / SPEAKERS_FILE
    if multi:
        speakers_path.write_text(json.dumps({name: i for i, name in enumerate(speakers)}))
    args = vits.VitsArgs(
        hidden_channels=16,
        hidden_channels_ffn_text_encoder=32,
        num_heads_text_encoder=2,
        num_layers_text_encoder=1,
        kernel_size_text_encoder=3,
        out_channels=129,  # fft_size / 2 + 1
        spec_segment_size=8,
        num_layers_posterior_encoder=1,
        num_layers_flow=1,
        resblock_type_decoder="2",
        resblock_kernel_sizes_decoder=[3],
        resblock_dilation_sizes_decoder=[[1, 3]],
        upsample_rates_decoder=[4, 4, 4],  # product = hop_length
        upsample_initial_channel_decoder=32,
        upsample_kernel_sizes_decoder=[8, 8, 8],
        use_sdp=False,
        init_discriminator=False,
        use_speaker_embedding=multi,
        speaker_embedding_channels=8,
        speakers_file=str(speakers_path) if multi else None,
    )
    config = vits_config.VitsConfig(
        model_args=args,
        audio=shared.BaseAudioConfig(
            sample_rate=SAMPLE_RATE,
            fft_size=256,
            win_length=256,
            hop_length=64,
            num_mels=16,
            mel_fmin=0,
            mel_fmax=None,
        ),
        use_phonemes=False,
        phonemizer=None,
        text_cleaner="basic_cleaners",
        add_blank=True,
        characters=tts_shared.CharactersConfig(
            characters_class="TTS.tts.models.vits.VitsCharacters",
            pad="_",
            eos="",
            bos="",
            blank="#",
            characters="abcdefghijklmnopqrstuvwxyz",
            punctuations="!'(),-.:;? ",
            phonemes=None,
            is_unique=True,
            is_sorted=True,
        ),
        use_speaker_embedding=multi,
        speakers_file=str(speakers_path) if multi else None,
    )
    torch.manual_seed(seed)
    model = vits.Vits(config)  # Vits.init_from_config(config) is deprecated in coqui-tts 0.27+
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    config.save_json(str(folder / "config.json"))
    return folder
