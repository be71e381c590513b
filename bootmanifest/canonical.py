"""The canonical byte form of a manifest struct.

Kept apart from :mod:`bootmanifest.build` so that capos-init, which only
verifies, does not import the builder and its data parsers at boot.
"""

from __future__ import annotations

from typing import Any

import capnp


def encode(reader: Any) -> bytes:
    """The deterministic single-segment encoding of a struct reader.

    ``capnp._MallocMessageBuilder`` is pycapnp's plain message class; its
    constructor takes the first segment's size in words, which is how the
    whole copy is kept in one segment.
    """
    words = reader.total_size.word_count + 1
    message = capnp._MallocMessageBuilder(words)
    message.set_root(reader)
    segments = message.get_segments_for_output()
    if len(segments) != 1:
        raise ValueError("manifest did not fit one segment")
    return bytes(segments[0])
