"""The private CA: the CertificateAuthority capability (proposal Phase 9).

Layout per STYLE.md 4.2: ``model`` (issuance policy, requests and
records as frozen values), ``errors`` (``Reason``), ``policy`` (the pure
decisions: narrowing, admitting a request), ``issuer`` (building and
signing certificates, CRLs and the delegated OCSP responder
certificate with cryptography's builders), ``store`` (the CA directory:
key, certificate and the SQLite issuance database) and
``authority_impl`` (the capability server).
"""
