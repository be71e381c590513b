"""X.509 certificates as capabilities: Certificate, CertificateChain,
TrustStore, CertVerifier and PinSet (certificates-tls-ct-proposal,
Phases 1 and 7).

Layout per STYLE.md 4.2: ``model`` (parsed values), ``errors``
(``Reason``), ``policy`` (pure verification core over pyca's
``cryptography.x509.verification``), ``trust`` (trust-store core),
``pinning`` (pin-set core),
``boundary`` (errors as they cross a capability), and one ``*_impl``
module per schema interface.
"""
