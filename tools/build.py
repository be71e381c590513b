"""``make manifest`` / ``make image``: build what ``make run`` boots.

The same two steps as ``make run``'s first two, with the same inputs:
the boot manifest, signed with the build key (made on first use in
``~/.cache/capos/keys``) and carrying the ACME test server's root as the
``acme-server-root`` extra anchor the service graph names; then the
image, cached on its inputs.

Exit status: 0 built (or unchanged), 1 a step failed (named), 2 usage.
"""

from __future__ import annotations

import argparse
import sys

from tools import run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.build",
        description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest-only", action="store_true",
                    help="build and sign build/manifest.bin, no image")
    args = ap.parse_args(argv)
    report = run.Report()
    try:
        manifest, pub = run.step(report, "manifest",
                                 lambda: run.build_manifest(report))
        if not args.manifest_only:
            run.step(report, "image",
                     lambda: run.build_image(report, manifest, pub))
    except run.StepError as err:
        print(f"build: FAILED at step {err.step}: {err.detail}",
              file=sys.stderr)
        return 1
    m = report.facts["manifest"]
    print(f"manifest {manifest} version {m['version']} sha256 {m['sha256']}"
          f" ({m['anchors']} anchors, {m['ctLogs']} CT logs); public key "
          f"{pub}")
    if "image" in report.facts:
        print(f"image {run.BUILD / 'image'} initramfs sha256 "
              f"{report.facts['image']['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
