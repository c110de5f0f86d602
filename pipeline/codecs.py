"""Faust codecs for pydantic records: Faust only knows its own ``Record`` type.

Topics whose bytes come from outside (raw vendor payloads) stay ``raw`` and are
decoded inside the agent, because Faust drops a message whose value fails to
decode; we dead-letter it instead.
"""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs
from pydantic import BaseModel

from schemas.base import dumps


class PydanticCodec(codecs.Codec):
    """JSON bytes ⇄ one pydantic model (validated on the way in)."""

    def __init__(self, model: type[BaseModel], **kwargs: Any) -> None:
        self.model = model
        super().__init__(model=model, **kwargs)

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, BaseModel):
            return dumps(obj)
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return self.model.model_validate_json(s)


class OrjsonCodec(codecs.Codec):
    """Plain JSON values (dicts, strings, numbers), fast; a pydantic record inside one is
    written as its JSON form (and read back as a dict)."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=_json_form)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


def _json_form(obj: Any) -> Any:
    if isinstance(obj, BaseModel):  # its JSON, written by pydantic and embedded as it is
        return orjson.Fragment(dumps(obj))
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


_cache: dict[type[BaseModel], PydanticCodec] = {}


def codec_for(model: type[BaseModel]) -> PydanticCodec:
    if model not in _cache:
        _cache[model] = PydanticCodec(model)
    return _cache[model]


ORJSON = OrjsonCodec()


class StrCodec(codecs.Codec):
    """UTF-8 string keys: the same type in memory, on the wire and after changelog recovery."""

    def _dumps(self, obj: Any) -> bytes:
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, s: bytes) -> Any:
        return s.decode()


STR = StrCodec()
