"""Turning a chosen beat into media: writer, image, voice and clip backends."""

from generation.pipeline import Generators, RenderJob, RenderResult, derive_seed, render_episode

__all__ = ["Generators", "RenderJob", "RenderResult", "derive_seed", "render_episode"]
