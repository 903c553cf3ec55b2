"""Reading SDK answers and making records: fields of models or dicts, times, references."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from atproto_client import models

from bot.platforms.bluesky.text import Facet


def get(obj: object, name: str) -> Any:
    """A field of an SDK model or of a plain dict (unknown records come as dicts)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def when(value: object, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            found = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return fallback
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
    return fallback


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Ref:
    """A strong reference: the record's URI and the CID of its content."""

    uri: str
    cid: str
    value: Any = None

    def strong(self) -> Any:
        return models.ComAtprotoRepoStrongRef.Main(uri=self.uri, cid=self.cid)


def facet_model(facet: Facet) -> Any:
    feature: Any
    if facet.kind == "link":
        feature = models.AppBskyRichtextFacet.Link(uri=facet.value)
    else:
        feature = models.AppBskyRichtextFacet.Mention(did=facet.value)
    index = models.AppBskyRichtextFacet.ByteSlice(byte_start=facet.start, byte_end=facet.end)
    return models.AppBskyRichtextFacet.Main(features=[feature], index=index)


def aspect_model(size: tuple[int, int] | None) -> Any:
    if size is None:
        return None
    return models.AppBskyEmbedDefs.AspectRatio(width=size[0], height=size[1])
