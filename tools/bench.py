"""``make bench``: every benchmark figure, one per line.

Format: ``bench: <name> = <value> <unit>``, and for a comparison
``(<peer> <value> <unit>, ratio <x>)`` after it. No figure is asserted
anywhere; these are measurements, printed.

- image: initramfs size (zstd);
- boot: QEMU start to capos-init's CAPOS-READY, and to the gateway
  serving its ACME certificate, under TCG, on a fresh data disk as
  ``make run`` boots; the peer is the single-process smoke guest of the
  same image booted in the same run. Then the same disk booted again:
  READY, and the gateway serving the chain it kept in its store (no
  issuance, and no ACME stack loaded). Each figure is the median of
  :data:`BOOT_ROUNDS` rounds of the three boots;
- translation: the TCG translation blocks QEMU made by READY (``info
  jit``): how much distinct code the boot ran, steady where seconds
  drift with the host's load;
- memory: guest memory in use when every service is ready, and the
  services' peak (their memory cgroup's ``memory.peak``) after issuance
  and 20 handshakes;
- every ``tools/bench_<area>.py``'s ``figures()``: the figures of one
  subsystem (trust and verification, ACME, revocation, ...), each with
  its peer measured in the same run.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Rounds of boots whose medians the boot figures are.
BOOT_ROUNDS = 3


def line(name: str, value: float, unit: str,
         peer: tuple[str, float] | None = None) -> None:
    shown = str(value) if isinstance(value, int) else f"{value:.3f}"
    text = f"bench: {name} = {shown} {unit}"
    if peer is not None and peer[1] > 0:
        ratio = value / peer[1]
        text += f" ({peer[0]} {peer[1]:.3f} {unit}, ratio {ratio:.2f})"
    print(text, flush=True)


def boot_figures() -> None:
    from tools import run
    from tools.pebble import Pebble
    from tools.vm import VM, make_data_disk, tls_handshake

    report = run.Report()
    manifest, pub = run.build_manifest(report)
    image = run.build_image(report, manifest, pub)
    line("initramfs_size", image.joinpath(
        "initramfs.cpio.zst").stat().st_size / 1e6, "MB")
    logs = REPO / "logs" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    got: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        got.setdefault(name, []).append(value)

    with Pebble(logs, nonce_reject=0) as peb:
        def vm(disk: Path) -> VM:
            return VM(image, hostfwd=[(peb.ports.http01, 80)],
                      guestfwd=[(run.ACME_GUEST_IP, peb.ports.acme,
                                 peb.ports.acme)],
                      append=(f"capos.host={run.ACME_GUEST_IP}:"
                              "acme.capos.test capos.setting=acmeDirectory="
                              f"https://acme.capos.test:{peb.ports.acme}/dir"
                              f" capos.setting=tlsName={run.NAME}"),
                      console_dir=logs, data_disk=disk)

        # Each round boots the smoke guest, the full image on a fresh
        # disk and that disk again, one after the other, so the host's
        # drift (tens of percent within minutes here) falls on all
        # three alike; each figure is the median of the rounds.
        for round_ in range(BOOT_ROUNDS):
            with VM(image, guest="smoke") as smoke:
                note("smoke", smoke.boot_seconds)
            disk = make_data_disk(logs / f"data-{round_}.img")
            with vm(disk) as first:
                note("ready", first.boot_seconds)
                note("blocks", first.translation()["blocks"])
                used = re.search(r"mem_used_kb=(\d+)", first.ready_line)
                if used:
                    note("used", int(used.group(1)) / 1024)
                first.wait_for("CAPOS-GATEWAY serving", 240)
                note("serving", time.monotonic() - first._t0)
                for _ in range(20):
                    tls_handshake(first.port)
                # capos-init reports a grown peak within half a second.
                time.sleep(1.0)
                note("peak", first.memory_kb()["peak"] / 1024)
            with vm(disk) as again:
                note("reboot_ready", again.boot_seconds)
                kept = again.wait_for("CAPOS-GATEWAY serving", 240)
                note("reboot_serving", time.monotonic() - again._t0)
            if "source=store" not in kept:
                raise RuntimeError(f"the second boot did not serve its "
                                   f"stored chain: {kept.strip()}")
    mid = {name: statistics.median(values) for name, values in got.items()}
    peer = ("single-process smoke guest", mid["smoke"])
    line("boot_to_all_services_ready", mid["ready"], "s", peer)
    line("boot_to_gateway_serving_acme_cert", mid["serving"], "s")
    # The distinct guest code the boot ran (QEMU translates each block
    # once): a figure the host's load hardly moves, unlike the seconds.
    line("boot_translation_blocks_at_ready", mid["blocks"], "blocks")
    line("reboot_to_all_services_ready", mid["reboot_ready"], "s", peer)
    line("reboot_to_gateway_serving_stored_cert", mid["reboot_serving"],
         "s", peer)
    if "used" in mid:
        line("guest_memory_used_at_ready", mid["used"], "MiB")
    if mid["peak"]:
        line("services_memory_peak", mid["peak"], "MiB")


def area_modules() -> list[str]:
    """Each ``tools/bench_<area>.py``: one subsystem's figures."""
    return sorted(f"tools.{p.stem}"
                  for p in (REPO / "tools").glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import importlib

    ap = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="Print the benchmark figures, one per line.")
    ap.add_argument("--only", action="append", default=[],
                    metavar="AREA", help="run only these areas (boot, or "
                    "<area> of a tools/bench_<area>.py); repeatable")
    args = ap.parse_args(argv)
    areas = {"boot": boot_figures}
    for name in area_modules():
        areas[name.removeprefix("tools.bench_")] = importlib.import_module(
            name).figures
    wanted = args.only or list(areas)
    unknown = sorted(set(wanted) - set(areas))
    if unknown:
        ap.error(f"unknown area {unknown[0]!r}; known: "
                 f"{', '.join(sorted(areas))}")
    failed = []
    for name in wanted:
        try:
            areas[name]()
        except Exception as err:  # report it, go on with the rest
            print(f"bench: {name} failed: {type(err).__name__}: {err}",
                  file=sys.stderr, flush=True)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
