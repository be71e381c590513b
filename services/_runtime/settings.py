"""Every run-time setting a service reads (``capos.setting=K=V`` on the
kernel command line, capos-init's ``--setting K=V``), with the service
that reads it. capos-init hands every setting to every service; a key
no service reads would be ignored silently, so capos-init says so on the
console and ``python -m tools.vm boot --setting`` refuses it. A test
keeps this table equal to the keys the services' code reads."""

from __future__ import annotations

#: key -> (the service that reads it, what it sets)
KNOWN: dict[str, tuple[str, str]] = {
    "acmeDirectory": ("acme", "the ACME server's directory URL"),
    "acmeContact": ("gateway", "the ACME account's contact (mailto:)"),
    "tlsName": ("gateway", "the name the gateway orders and serves"),
    "caDir": ("ca", "where the CA keeps its key and database"),
    "caName": ("ca", "the private CA's common name"),
    "ocspUrl": ("ca", "the OCSP URL put in issued certificates"),
    "crlUrl": ("ca", "the CRL URL put in issued certificates"),
    "ocspPort": ("ca", "the port its OCSP and CRL server listens on"),
    "ocspValiditySeconds": ("ca", "how long an OCSP response is valid"),
    "maxLifetimeSeconds": ("ca", "the longest certificate it issues"),
    "mustStaple": ("ca", "true: every issued certificate is must-staple"),
    "faultStoreCommitDelay": ("certstore", "fault injection: seconds a "
                              "store write waits before its rename"),
    "clockSkewSeconds": ("ocsp", "the OCSP client's clock skew"),
    "ocspAllowSha1": ("ocsp", "true: SHA-1 signed OCSP responses pass"),
    "ocspHosts": ("ocsp", "comma-separated hosts the OCSP client may "
                  "reach"),
    "stapleName": ("tlsstaple", "the stapling endpoint's name"),
    "staplePort": ("tlsstaple", "the stapling endpoint's port"),
    "staplePollSeconds": ("tlsstaple", "how often it refreshes its "
                          "staple"),
    "stapleLifetimeSeconds": ("tlsstaple", "its certificate's lifetime"),
}


def unknown(keys: list[str]) -> list[str]:
    """The keys among ``keys`` no service reads, in order."""
    return [k for k in keys if k not in KNOWN]


def known_list() -> str:
    """The known keys, for an error message."""
    return ", ".join(sorted(KNOWN))
