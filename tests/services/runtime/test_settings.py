"""The table of run-time settings (services._runtime.settings.KNOWN) is
the set of keys the services' code reads, no more and no less."""

from __future__ import annotations

import re
from pathlib import Path

from services._runtime import settings

SERVICES = Path(__file__).resolve().parents[3] / "services"

#: ``settings.get("k"``, ``settings["k"]``, and the ``s = ctx.settings``
#: spelling (``s.get("k"``), across a line break.
READ = re.compile(r"(?:\bsettings|\bs)\s*(?:\.get\(|\[)\s*\"(\w+)\"")


def read_by_services() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in SERVICES.rglob("*.py"):
        if path.name == "settings.py" and path.parent.name == "_runtime":
            continue
        for key in READ.findall(path.read_text()):
            found.setdefault(key, set()).add(path.parent.name)
    return found


def test_the_table_is_what_the_services_read() -> None:
    found = read_by_services()
    assert set(found) == set(settings.KNOWN)
    for key, (service, what) in settings.KNOWN.items():
        assert service in found[key], (key, found[key])
        assert what


def test_unknown_keys_in_order() -> None:
    assert settings.unknown(["tlsName", "bogus", "caName", "x"]) == [
        "bogus", "x"]
    assert settings.known_list().startswith("acmeContact, acmeDirectory")
