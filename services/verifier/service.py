"""The verifier service: one ``CertVerifier`` per policy preset.

Input ``presets``: the manifest's policy presets (JSON). Each preset
becomes one exported ``CertVerifier`` named after it, its policy fixed
when minted; there is no method that lowers it. A holder who should
only verify leniently is simply granted ``webPkiLenient``.

Optional grants ``crlStore`` (a ``CrlStore``) and ``ocspResponder`` (an
``OcspResponder``) are the revocation evidence every verifier may use
beyond a caller's staple; without ``ocspResponder`` the verifiers cannot
fetch status and soft-fail (or fail ``ocspUnavailable`` under
``requireOcsp``), saying so in the outcome.
"""

from __future__ import annotations

import json
from typing import Any

from services._runtime.host import ServiceContext
from services._runtime.schema import pki
from services.x509.policy import VerificationPolicy
from services.x509.verifier_impl import CertVerifierImpl


def policy_from_preset(preset: dict[str, Any]) -> VerificationPolicy:
    """A :class:`VerificationPolicy` from one manifest ``PolicyPreset``."""
    return VerificationPolicy(
        min_scts=int(preset["minScts"]),
        allowed_algorithms=tuple(preset["allowedAlgorithms"]),
        allowed_signature_schemes=tuple(preset["allowedSignatureSchemes"]),
        require_ocsp=bool(preset["requireOcsp"]),
        max_chain_length=int(preset["maxChainLength"]),
        permit_name_constraints=bool(preset["permitNameConstraints"]),
        clock_skew_seconds=int(preset["clockSkewSeconds"]),
        stapling_required=bool(preset["staplingRequired"]),
        cabf_root_profile=bool(preset.get("cabfRootProfile", False)),
    )


async def build(ctx: ServiceContext) -> dict[str, Any]:
    presets = json.loads(ctx.input("presets"))
    crl_store = (ctx.cap("crlStore", pki().CrlStore)
                 if "crlStore" in ctx.grants else None)
    responder = (ctx.cap("ocspResponder", pki().OcspResponder)
                 if "ocspResponder" in ctx.grants else None)
    return {
        p["name"]: CertVerifierImpl(
            policy_from_preset(p), audit=ctx.audit, clock=ctx.clock,
            service=ctx.name, name=p["name"], policy_name=p["name"],
            crl_store=crl_store, ocsp_responder=responder,
        )
        for p in presets
    }
