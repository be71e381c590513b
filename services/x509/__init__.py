"""X.509 certificates as capabilities: Certificate, CertificateChain,
TrustStore and CertVerifier (certificates-tls-ct-proposal, Phase 1).

Layout per STYLE.md 4.2: ``model`` (parsed values), ``errors``
(``Reason``), ``policy`` (pure verification core over pyca's
``cryptography.x509.verification``), ``trust`` (trust-store core),
``boundary`` (errors as they cross a capability), and one ``*_impl``
module per schema interface.
"""
