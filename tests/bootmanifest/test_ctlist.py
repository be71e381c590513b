"""CT log list signature and parsing."""

from __future__ import annotations

import pytest

from bootmanifest import build, ctlist
from bootmanifest.errors import ManifestError

CT = build.DATA_DIR / "ct"


@pytest.fixture(scope="module")
def files() -> tuple[bytes, bytes, bytes]:
    return (
        (CT / "log_list.json").read_bytes(),
        (CT / "log_list.sig").read_bytes(),
        (CT / "log_list_pubkey.pem").read_bytes(),
    )


def test_good_signature_and_parse(files) -> None:
    logs = ctlist.load(*files)
    assert logs.version == "85.92"
    assert logs.timestamp == "2026-05-29T13:42:48Z"
    assert len(logs.logs) == 56
    assert sum(log.is_tiled for log in logs.logs) == 21
    argon = next(x for x in logs.logs if "Argon2026h1" in x.description)
    assert argon.operator == "Google"
    assert argon.mmd == 86400
    assert argon.state == "usable"
    assert argon.temporal_start == 1767225600  # 2026-01-01
    assert argon.temporal_end == 1782864000  # 2026-07-01


@pytest.mark.parametrize(
    "offset", [0, 100, -2], ids=["first", "middle", "last"]
)
def test_flipped_byte_fails(files, offset: int) -> None:
    data, sig, pub = files
    tampered = bytearray(data)
    tampered[offset] ^= 0x01
    with pytest.raises(ManifestError) as info:
        ctlist.load(bytes(tampered), sig, pub)
    assert info.value.reason == "ctListSignature"


def test_bad_list_stops_the_build(tmp_path, files) -> None:
    data, sig, pub = files
    (tmp_path / "ct").mkdir()
    (tmp_path / "roots").symlink_to(build.DATA_DIR / "roots")
    (tmp_path / "ct" / "log_list.json").write_bytes(data.replace(
        b"Argon2026h1", b"Argon2026h9", 1))
    (tmp_path / "ct" / "log_list.sig").write_bytes(sig)
    (tmp_path / "ct" / "log_list_pubkey.pem").write_bytes(pub)
    with pytest.raises(ManifestError) as info:
        build.read_inputs(tmp_path)
    assert info.value.reason == "ctListSignature"
