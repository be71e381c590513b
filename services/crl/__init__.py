"""Certificate revocation lists (RFC 5280 sections 5 and 6.3): the
CrlStore capability (proposal Phase 4).

Layout per STYLE.md 4.2: ``model`` (a checked CRL), ``errors``
(``Reason`` and ``Problem``), ``policy`` (pure: signature, issuer,
freshness, critical extensions, scope), ``transport`` (fetching CRLs
behind a ``typing.Protocol``) and ``store_impl`` (the capability).
"""
