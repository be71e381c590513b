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
  issuance, and no ACME stack loaded);
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
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def line(name: str, value: float, unit: str,
         peer: tuple[str, float] | None = None) -> None:
    text = f"bench: {name} = {value:.3f} {unit}"
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
    with VM(image, guest="smoke") as smoke:
        smoke_ready = smoke.boot_seconds
    logs = REPO / "logs" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    disk = make_data_disk(logs / "data.img")
    with Pebble(logs, nonce_reject=0) as peb:
        def vm() -> VM:
            return VM(image, hostfwd=[(peb.ports.http01, 80)],
                      guestfwd=[(run.ACME_GUEST_IP, peb.ports.acme,
                                 peb.ports.acme)],
                      append=(f"capos.host={run.ACME_GUEST_IP}:"
                              "acme.capos.test capos.setting=acmeDirectory="
                              f"https://acme.capos.test:{peb.ports.acme}/dir"
                              f" capos.setting=tlsName={run.NAME}"),
                      console_dir=logs, data_disk=disk)

        with vm() as first:
            ready = first.boot_seconds
            blocks = first.translation()["blocks"]
            used = re.search(r"mem_used_kb=(\d+)", first.ready_line)
            first.wait_for("CAPOS-GATEWAY serving", 240)
            serving = time.monotonic() - first._t0
            for _ in range(20):
                tls_handshake(first.port)
            # capos-init reports a grown peak within half a second.
            time.sleep(1.0)
            mem = first.memory_kb()
        with vm() as again:
            reboot_ready = again.boot_seconds
            kept = again.wait_for("CAPOS-GATEWAY serving", 240)
            reboot_serving = time.monotonic() - again._t0
    line("boot_to_all_services_ready", ready, "s",
         ("single-process smoke guest", smoke_ready))
    line("boot_to_gateway_serving_acme_cert", serving, "s")
    # The distinct guest code the boot ran (QEMU translates each block
    # once): a figure the host's load hardly moves, unlike the seconds.
    line("boot_translation_blocks_at_ready", blocks, "blocks")
    if "source=store" not in kept:
        raise RuntimeError(f"the second boot did not serve its stored "
                           f"chain: {kept.strip()}")
    line("reboot_to_all_services_ready", reboot_ready, "s",
         ("single-process smoke guest", smoke_ready))
    line("reboot_to_gateway_serving_stored_cert", reboot_serving, "s",
         ("single-process smoke guest", smoke_ready))
    if used:
        line("guest_memory_used_at_ready", int(used.group(1)) / 1024, "MiB")
    if mem["peak"]:
        line("services_memory_peak", mem["peak"] / 1024, "MiB")


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
