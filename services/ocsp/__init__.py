"""OCSP (RFC 6960): the responder service, the OcspResponder client,
the OcspStapler, the revocation-evidence check and a stapling TLS
server (proposal Phase 4).

Layout per STYLE.md 4.2: ``model`` (checked responses, statuses),
``errors`` (``Reason`` and the finer ``Problem``), ``policy`` (pure:
building requests, checking responses), ``responder`` (pure-ish:
answering requests with cryptography's OCSP builder), ``server`` (the
responder over HTTP on 127.0.0.1), ``transport`` (outbound HTTP behind
a ``typing.Protocol``), ``stapler`` (the staple state machine),
``evidence`` (the verifier's revocation decision), ``staple_tls``
(pyOpenSSL server stapling), and ``responder_impl`` / ``stapler_impl``
(one capability server each).
"""
