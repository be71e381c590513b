"""badNonce handling (field report 16), with the server's answers
injected at the library's one-request seam."""

from __future__ import annotations

from typing import Any

import pytest
from acme import messages

from services.acme.client_impl import BAD_NONCE_RETRIES, RetryingNetwork


class Scripted(RetryingNetwork):
    """Answers each POST from a script: an error code or "ok"."""

    def __init__(self, script: list[str]) -> None:
        super().__init__(None, user_agent="test")
        self.script = list(script)
        self.posts = 0

    def _post_once(self, *args: Any, **kwargs: Any) -> Any:
        self.posts += 1
        answer = self.script.pop(0)
        if answer == "ok":
            return "response"
        raise messages.Error.with_code(answer)


def test_retries_badnonce_then_succeeds() -> None:
    net = Scripted(["badNonce", "badNonce", "ok"])
    assert net.post("https://acme.test/new-order", None) == "response"
    assert net.posts == 3


def test_stops_after_the_retry_limit() -> None:
    net = Scripted(["badNonce"] * (BAD_NONCE_RETRIES + 2))
    with pytest.raises(messages.Error) as info:
        net.post("https://acme.test/new-order", None)
    assert info.value.code == "badNonce"
    assert net.posts == BAD_NONCE_RETRIES + 1


def test_other_errors_are_not_retried() -> None:
    net = Scripted(["malformed", "ok"])
    with pytest.raises(messages.Error) as info:
        net.post("https://acme.test/new-order", None)
    assert info.value.code == "malformed"
    assert net.posts == 1
