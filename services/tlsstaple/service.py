"""The stapling TLS endpoint: a must-staple certificate from the private
CA, served with its OCSP staple (RFC 6066 section 8; TLS 1.3 carries it
in the leaf's CertificateEntry, RFC 8446 4.4.2.1; must-staple is RFC
7633's TLS feature ``status_request``).

Pebble issues no OCSP, so the ACME gateway on 443 has nothing to staple;
this service is the project's stapling server in the guest. At start it
narrows the granted ``ca`` capability to its own name, must-staple and a
bounded lifetime, and has that narrowed holder issue its certificate
(or reuses the key and chain kept in its ``stateDir`` while more than a
third of the lifetime is left, DESIGN.md section 6). An
:class:`~services.ocsp.stapler_impl.OcspStaplerImpl` fetches the staple
through the granted ``ocsp`` capability (an ``OcspResponder``, which asks
the responder in the certificate's AIA), caches it in ``stateDir``, and
refreshes it at half its validity; the TLS listener capos-init made
(``listen``) staples whatever it holds, never a response past its
nextUpdate.

Settings: ``stapleName`` (default ``staple.capos.test``), ``staplePort``
(8443, a port in the manifest entry's ``listen``),
``stapleLifetimeSeconds`` (default 86400), ``staplePollSeconds``
(default 60: the longest wait between refresh checks, so a failed
refresh is retried).

The service's start returns at once: issuing (or reusing) the
certificate and fetching the first staple happen once every service has
started (``ServiceContext.ready``), like the gateway's ACME order, so
capos-init's ready line does not wait on them.
A failure there is said on the console and in the audit (operation
``start``), and tried again every ``staplePollSeconds``.

Console lines: ``CAPOS-STAPLE serving port=<p> name=<n> serial=<hex>
sha256=<hex> reused=<yes|no>`` once listening, ``CAPOS-STAPLE failed
<reason>: <detail>; retry in <n> s`` when bringing it up failed, and
``CAPOS-STAPLE health=<ok|degraded|failing|empty> ...`` on every change
of the stapler's state (:mod:`services.ocsp.stapler`); the audit records
are the stapler's own (``refresh``, ``stopStapling``, ``loadCache``) and
``start`` errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import capnp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services._runtime.audit import AuditEvent
from services._runtime.boundary import parse_remote
from services._runtime.host import ServiceContext
from services._runtime.schema import pki
from services.ca.store import write_atomic
from services.ocsp.staple_tls import StaplingTLSServer
from services.ocsp.stapler import StaplerCore
from services.ocsp.stapler_impl import OcspStaplerImpl
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate

log = logging.getLogger(__name__)

KEY_FILE = "key.pem"
CHAIN_FILE = "chain.pem"
STAPLE_DIR = "staples"

#: Kept alive for the life of the process.
_RUNNING: list[Any] = []


def say(line: str) -> None:
    print(f"CAPOS-STAPLE {line}", flush=True)


def load_kept(state: Path | None, now: dt.datetime,
              ) -> tuple[Any, list[bytes]] | None:
    """The key and chain kept in ``state``, if the leaf matches the key
    and has more than a third of its lifetime left."""
    if state is None:
        return None
    try:
        key = serialization.load_pem_private_key(
            (state / KEY_FILE).read_bytes(), password=None)
        certs = x509.load_pem_x509_certificates(
            (state / CHAIN_FILE).read_bytes())
    except (OSError, ValueError) as err:
        log.info("no usable kept certificate: %s", err)
        return None
    leaf = certs[0]
    nb, na = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if (len(certs) < 2 or leaf.public_key() != key.public_key()
            or now >= na - (na - nb) / 3):
        return None
    return key, [c.public_bytes(serialization.Encoding.DER) for c in certs]


def keep(state: Path | None, key: Any, ders: list[bytes]) -> None:
    """Keep the chain, then its key: a failure between the two leaves a
    pair that does not match, which :func:`load_kept` refuses, never a
    new key beside an old chain it would serve."""
    if state is None:
        return
    write_atomic(state / CHAIN_FILE, b"".join(
        x509.load_der_x509_certificate(d).public_bytes(
            serialization.Encoding.PEM) for d in ders))
    write_atomic(state / KEY_FILE, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), mode=0o600)


def csr_for(key: Any, name: str) -> bytes:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([
               x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .add_extension(x509.SubjectAlternativeName(
               [x509.DNSName(name)]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.DER)


async def issue(ca: Any, key: Any, name: str, lifetime: int) -> list[bytes]:
    """Narrow ``ca`` to ``name``, must-staple and ``lifetime``, then
    issue through the narrowed holder; the chain's DER, leaf first."""
    narrowed = (await ca.narrow(policy={
        "nameSubtrees": {"permitted": [{"base": {"dnsName": name}}]},
        "maxLifetimeSeconds": lifetime, "mustStaple": True})).ca
    chain = (await narrowed.issue(request={
        "csr": csr_for(key, name),
        "subjectAltNames": [{"dnsName": name}],
        "lifetimeSeconds": lifetime})).chain
    certs = (await chain.certificates()).chain
    return [bytes((await c.der()).encoded) for c in certs]


class HealthReporter:
    """Says each change of the stapler's state on the console."""

    def __init__(self, core: StaplerCore) -> None:
        self.core = core
        self.last = ""

    def report(self) -> None:
        # current() also records the stop once nextUpdate has passed.
        held = self.core.current()
        health = self.core.health
        if health == self.last:
            return
        self.last = health
        when = ""
        if held is not None:
            when = (f" thisUpdate={held.this_update.isoformat()}"
                    f" nextUpdate={held.next_update.isoformat()}")
        say(f"health={health}{when}")


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """What the endpoint needs, read and checked while init's start call
    is under way: a bad setting or a missing grant still fails the
    start (and so the boot), and the grants are live clients."""

    name: str
    port: int
    lifetime: int
    poll: float
    state: Path | None
    ca: Any
    ocsp: Any


def endpoint(ctx: ServiceContext) -> Endpoint:
    s = ctx.settings
    port = int(s.get("staplePort", "8443"))
    if port not in ctx.listeners:
        raise ValueError(f"staplePort {port} is not a port this service's "
                         f"entry listens on ({sorted(ctx.listeners)})")
    poll = float(s.get("staplePollSeconds", "60"))
    if not poll > 0:
        raise ValueError(f"staplePollSeconds {poll:g}: must be above 0")
    raw_state = ctx.inputs.get("stateDir")
    return Endpoint(
        name=s.get("stapleName", "staple.capos.test"), port=port,
        lifetime=int(s.get("stapleLifetimeSeconds", "86400")), poll=poll,
        state=Path(raw_state.decode()) if raw_state else None,
        ca=ctx.cap("ca", pki().CertificateAuthority),
        ocsp=ctx.cap("ocsp", pki().OcspResponder))


async def build(ctx: ServiceContext) -> dict[str, Any]:
    """Start the endpoint; it exports nothing. The certificate and the
    first staple are obtained once every service has started
    (:func:`bring_up`), as the gateway's ACME order is, so init's ready
    line does not wait on the CA and the responder; a failure there is
    said on the console, audited and tried again every
    ``staplePollSeconds``."""
    ep = endpoint(ctx)
    task = asyncio.get_running_loop().create_task(_keep_trying(ctx, ep))
    _RUNNING.append(task)
    return {}


async def _keep_trying(ctx: ServiceContext, ep: Endpoint) -> None:
    #: The key and chain this boot issued, once it has: a later failure
    #: (saving them, the TLS server) is retried without a new issuance.
    issued: list[tuple[Any, list[bytes]]] = []
    # Not before every service has started: the CA's issuance, the
    # responder's first answer and the TLS context would otherwise run
    # while the services after this one start, and hold up capos-init's
    # ready line by 0.35-0.45 s of a TCG boot (alternated boots).
    await ctx.ready.wait()
    while True:
        try:
            await bring_up(ctx, ep, issued)
            return
        except asyncio.CancelledError:
            raise
        except capnp.KjException as err:
            reason, detail = parse_remote(err)
        except Exception as err:  # said, audited and tried again
            # Before this task existed such a failure stopped the boot;
            # now it must not end the task unseen.
            reason, detail = "internal", f"{type(err).__name__}: {err}"
        say(f"failed {reason}: {detail[:300]}; retry in {ep.poll:g} s")
        ctx.audit.emit(AuditEvent(
            at=ctx.clock.now(), service=ctx.name, capability="tlsstaple",
            operation="start", outcome="error", reason=reason,
            detail=detail[:300]))
        await asyncio.sleep(ep.poll)


async def bring_up(ctx: ServiceContext, ep: Endpoint,
                   issued: list[tuple[Any, list[bytes]]]) -> None:
    """Issue (or reuse) the certificate, fetch its first staple and
    serve both on the listener init made. ``issued`` keeps what this
    boot issued across retries."""
    kept = None if issued else load_kept(ep.state, ctx.clock.now())
    if kept is not None:
        key, ders = kept
    else:
        if not issued:
            fresh = ec.generate_private_key(ec.SECP256R1())
            issued.append((fresh, await issue(ep.ca, fresh, ep.name,
                                              ep.lifetime)))
        key, ders = issued[0]
        keep(ep.state, key, ders)
    cache = None
    if ep.state is not None:
        cache = ep.state / STAPLE_DIR
        cache.mkdir(mode=0o700, exist_ok=True)
    core = StaplerCore(None, ctx.clock, ctx.audit, cache_dir=cache,
                       service=ctx.name)
    stapler = OcspStaplerImpl(core)
    chain = pki().CertificateChain._new_client(CertificateChainImpl(
        [parse_certificate(d) for d in ders]))
    # A staple that cannot be fetched now is not a failure here: the
    # stapler reports it (health=...) and its loop keeps trying.
    await stapler.attach(chain, ep.ocsp)
    server = StaplingTLSServer(key, ders, stapler.current_der,
                               sock=ctx.listeners[ep.port]).start()
    # Serving from here on: kept alive, and never started twice.
    _RUNNING.extend([server, chain])
    reporter = HealthReporter(core)

    async def sleep(seconds: float) -> None:
        reporter.report()
        await asyncio.sleep(seconds)

    _RUNNING.append(asyncio.get_running_loop().create_task(
        stapler.maintain(sleep, poll=ep.poll)))
    leaf = x509.load_der_x509_certificate(ders[0])
    say(f"serving port={ep.port} name={ep.name} "
        f"serial={leaf.serial_number:x} "
        f"sha256={leaf.fingerprint(hashes.SHA256()).hex()} "
        f"reused={'yes' if kept is not None else 'no'}")
    reporter.report()
