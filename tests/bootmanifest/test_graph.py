"""Service graph validation."""

from __future__ import annotations

import json

import pytest

from bootmanifest import build, graph
from bootmanifest.errors import ManifestError


def svc(name, exports=(), grants=(), inputs=(), **extra) -> dict:
    return {
        "name": name,
        "module": f"services.{name}.service",
        "exports": list(exports),
        "grants": [
            {"name": n, "provider": p, "cap": c} for n, p, c in grants
        ],
        "inputs": list(inputs),
        **extra,
    }


def check(*services, anchors=()) -> tuple[graph.Service, ...]:
    data = json.dumps({"services": list(services)}).encode()
    return graph.validate(graph.parse(data), anchor_names=anchors)


def error_of(*services, anchors=()) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        check(*services, anchors=anchors)
    assert info.value.reason == "graph"
    return info.value


def test_default_graph_is_valid() -> None:
    services = graph.validate(
        graph.parse(build.SERVICES_FILE.read_bytes()),
        anchor_names=["acme-server-root"],
    )
    names = [s.name for s in services]
    assert set(names) == {
        "audit", "trust", "verifier", "certstore", "acme", "gateway",
        "ca", "ocsp", "tlsstaple",
    }
    assert names.index("audit") < names.index("trust")
    assert names.index("trust") < names.index("verifier")


def test_start_order_puts_providers_first() -> None:
    order = check(
        svc("b", grants=[("x", "a", "cap")]), svc("a", exports=["cap"])
    )
    assert [s.name for s in order] == ["a", "b"]


def test_unknown_provider() -> None:
    err = error_of(svc("b", grants=[("x", "nosuch", "cap")]))
    assert err.context["service"] == "b"
    assert err.context["provider"] == "nosuch"
    assert "nosuch" in str(err)


def test_unknown_cap() -> None:
    err = error_of(
        svc("a", exports=["cap"]), svc("b", grants=[("x", "a", "nocap")])
    )
    assert err.context["service"] == "b"
    assert err.context["cap"] == "nocap"
    assert "nocap" in str(err)


def test_cycle() -> None:
    err = error_of(
        svc("a", exports=["p"], grants=[("q", "b", "q")]),
        svc("b", exports=["q"], grants=[("p", "a", "p")]),
    )
    assert "cycle" in err.detail
    assert err.context["cycle"] in ("a -> b -> a", "b -> a -> b")


def test_unknown_input_section() -> None:
    err = error_of(svc("a", inputs=["rootz"]))
    assert err.context == {"service": "a", "input": "rootz"}


def test_anchor_input_needs_the_anchor() -> None:
    err = error_of(svc("acme", inputs=["anchor:acme-test-root"]))
    assert err.context["input"] == "anchor:acme-test-root"
    check(svc("acme", inputs=["anchor:acme-test-root"]),
          anchors=["acme-test-root"])


def test_duplicate_service() -> None:
    assert error_of(svc("a"), svc("a")).context["service"] == "a"


def test_listen_needs_network() -> None:
    err = error_of(svc("gw", listen=[443], network=False))
    assert err.context["service"] == "gw"


def test_devices_are_kept_in_order() -> None:
    (only,) = check(svc("audit", devices=["capos.audit"]))
    assert only.devices == ("capos.audit",)


@pytest.mark.parametrize(
    ("services", "device", "detail"),
    [
        ([svc("a", devices=["../sda"])], "../sda", "bad device name"),
        ([svc("a", devices=["capos.audit", "capos.audit"])],
         "capos.audit", "named twice"),
        ([svc("a", devices=["capos.audit"]),
          svc("b", devices=["capos.audit"])],
         "capos.audit", "already granted to 'a'"),
    ],
    ids=["bad-name", "twice-in-one-entry", "two-holders"],
)
def test_bad_devices_refused(services, device, detail) -> None:
    err = error_of(*services)
    assert err.context["device"] == device
    assert detail in str(err)


def test_devices_must_be_names() -> None:
    err = error_of(svc("a", devices="capos.audit"))
    assert "devices must be a list of strings" in str(err)
