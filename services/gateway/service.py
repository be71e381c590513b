"""The TLS gateway: serves the certificate the ACME client obtained, and
renews it (RFC 8555 ordering; renewal times per DESIGN section 6).

Its TLS key is a P-256 key kept in its own state directory (``stateDir``
input, on the data disk; :mod:`services.gateway.keyfile`), handed to
the ACME client as a ``PrivateKey`` capability held here.

- if the granted ``certStore`` holds a chain under the handle
  ``gateway`` for this key, naming ``tlsName``, not expired
  (:func:`services.gateway.policy.reuse_refusal`), it is served again
  without an issuance (audit ``gateway.reuse``) as the gateway starts,
  so after a reboot the gateway answers TLS when capos-init says the
  system is ready; once every service has started
  (``ServiceContext.ready``) its renewal is scheduled as at boot: one
  already due gets a slot of its own
  (:meth:`services.acme.renewal.Renewer.adopt_at_boot`, no storm);
- otherwise, once every service has started (so capos-init's ready
  line does not wait on it), it registers its ACME account (the account
  key is kept in the state directory too, so a reboot goes on with the
  same account), orders a certificate for ``tlsName`` with its own
  http-01 solver and puts the chain in the store.

Renewal runs here, in the process that holds the certificate's key and
solver: a :class:`~services.acme.renewal.Renewer` over the granted
``acme`` client and ``certStore`` renews when a third of the lifetime is
left (half for ten days or less), or inside the server's RFC 9773
renewal window when it offers one and that comes sooner (the client's
``renewalInfo``), jittered, with backoff on failure, and puts the new
chain under the same handle. The gateway holds a
``watch`` subscription on that handle: every rotation event replaces
the TLS context used from the next handshake on; handshakes already
under way finish with the context they started with (the key stays the
same), so none fails.

Listeners (made by init, from the manifest entry's ``listen``): port 80
answers http-01 challenges only; port 443 is TLS (pyOpenSSL, one thread
per connection, blocking sockets) and answers every request with a short
plain-text page.

Console lines: ``CAPOS-GATEWAY serving handle=gateway name=<n>
(issued=<s>s|source=store) sha256=<leaf>`` once the first chain is
served, ``CAPOS-GATEWAY rotated handle=gateway sha256=<leaf>`` after
each rotation took effect, ``CAPOS-GATEWAY renewal (ok|error)
handle=gateway`` after each renewal attempt, ``CAPOS-GATEWAY failed
<reason>: <detail>`` if the first issuance fails.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import capnp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL

from services._runtime import audit as _audit
from services._runtime import tls
from services._runtime.boundary import parse_remote
from services._runtime.clock import from_epoch
from services._runtime.host import ServiceContext
from services._runtime.schema import pki
from services.certstore.store_impl import chain_ders
from services.gateway import keyfile
from services.gateway.policy import reuse_refusal
from services.gateway.solver_impl import (
    AlpnSlot,
    ChallengeTable,
    Http01SolverImpl,
)
from services.keys.private_key_impl import PrivateKeyImpl
from services.x509.chain_impl import CertificateChainImpl
from services.x509.model import parse_certificate

if TYPE_CHECKING:
    from services.acme.policy import RenewalWindow
    from services.acme.renewal import Renewer

log = logging.getLogger(__name__)
HANDLE = "gateway"
#: Longest sleep of the renewal loop between looks at the schedule.
RENEW_POLL = 60.0


def say(line: str) -> None:
    print(f"CAPOS-GATEWAY {line}", flush=True)


def tls_context(key: Any, ders: list[bytes],
                alpn: AlpnSlot | None = None) -> SSL.Context:
    """A server context for one key and chain (leaf first); with an
    ALPN slot, tls-alpn-01 handshakes for its name get its challenge
    certificate (RFC 8737)."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    if alpn is not None:
        ctx.set_alpn_select_callback(alpn.select)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.use_privatekey(key)
    certs = [x509.load_der_x509_certificate(d) for d in ders]
    ctx.use_certificate(certs[0])
    for extra in certs[1:]:
        ctx.add_extra_chain_cert(extra)
    ctx.check_privatekey()
    return ctx


class TLSServer:
    """Accepts on a listening socket; each handshake uses the context
    current at accept time, so a rotation applies from the next one."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._sock.setblocking(True)
        self.context: SSL.Context | None = None
        self.handshakes = 0

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self._sock.accept()
            threading.Thread(
                target=self._handle, args=(conn,), daemon=True
            ).start()

    def _handle(self, raw: socket.socket) -> None:
        ctx = self.context
        if ctx is None:
            raw.close()
            return
        if tls.answer(raw, ctx, b"capOS gateway: hello over TLS\n", 30):
            self.handshakes += 1


async def serve_http01(sock: socket.socket, table: ChallengeTable) -> None:
    """Port 80: http-01 responses, 404 for anything else."""

    async def handle(reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            parts = line.decode("latin-1").split()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            found = (
                table.lookup(parts[1])
                if len(parts) >= 2 and parts[0] == "GET" else None
            )
            status = b"200 OK" if found else b"404 Not Found"
            body = (found or "not found\n").encode()
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\n"
                b"Connection: close\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()
        except (TimeoutError, OSError, UnicodeError):
            pass
        finally:
            writer.close()

    sock.setblocking(False)
    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        await server.serve_forever()


#: Problem types (RFC 8555 section 6.7) a server answers a key with
#: when the account it controls is gone: deactivated (7.3.6: its key is
#: refused for good) or unknown to the server.
ACCOUNT_GONE = ("unauthorized:", "accountDoesNotExist:")


async def register_account(acme: Any, state: Path | None,
                           contact: list[str], emit: Any) -> Any:
    """The ACME account, through the granted ``acme`` client. Its key is
    kept in the state directory, so after a reboot the server hands back
    the same account (RFC 8555 section 7.3.1) rather than a new one
    being made each boot. A kept key whose account is gone is replaced,
    once, and a new account registered with the new key; each key the
    gateway makes is audited (``accountKey``)."""
    key, how = keyfile.load_or_create(state, keyfile.ACCOUNT_KEY_FILE)
    if how != "loaded":  # created, ephemeral, or replaced: <why>
        emit("accountKey", "ok", (keyfile.ACCOUNT_KEY_FILE,), detail=how)
    try:
        return (await acme.register(accountKey=PrivateKeyImpl(key),
                                    contact=contact)).account
    except capnp.KjException as err:
        reason, detail = parse_remote(err)
        if how != "loaded" or not detail.startswith(ACCOUNT_GONE):
            raise
    key = keyfile.replace(state, keyfile.ACCOUNT_KEY_FILE)
    emit("accountKey", "ok", (keyfile.ACCOUNT_KEY_FILE,),
         reason=reason, detail=f"replaced: the kept key's account is "
         f"gone ({detail[:200]})")
    return (await acme.register(accountKey=PrivateKeyImpl(key),
                                contact=contact)).account


class Gateway:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.table = ChallengeTable()
        self.tls = TLSServer(ctx.listeners[443])
        state = ctx.inputs.get("stateDir")
        self.state = Path(state.decode()) if state else None
        self.tls_key, self.key_source = keyfile.load_or_create(self.state)
        self.name = ctx.settings.get("tlsName", "www.capos.test")
        self.alpn = AlpnSlot(self.name, ctx.clock)
        self.account: Any = None
        self.tasks: list[asyncio.Task[None]] = []
        #: The leaf's SHA-256 in service since a stored chain was served
        #: again (:meth:`serve_stored`).
        self.serving: str | None = None
        #: Whether :meth:`serve_stored` has had the store's answer.
        self.store_read = False
        # Resolved now, inside build: the grants arrive in the params of
        # init's ``start`` call, and a capability read from them after
        # that call returned is not reliable (seen in the VM as a
        # "Schema mismatch: ... non-capability pointer" on a late read).
        self.acme = ctx.cap("acme", pki().AcmeClient)
        self.store = ctx.cap("certStore", pki().CertificateStore)

    def _emit(self, op: str, outcome: str, subject: tuple[str, ...],
              reason: str = "", detail: str = "") -> None:
        self.ctx.audit.emit(_audit.AuditEvent(
            at=self.ctx.clock.now(), service=self.ctx.name,
            capability="gateway", operation=op, outcome=outcome,
            reason=reason, subject=subject, detail=detail,
        ))

    async def _register(self, acme: Any) -> None:
        self.account = await register_account(
            acme, self.state,
            [self.ctx.settings.get("acmeContact", "mailto:admin@capos.test")],
            self._emit)

    async def _window(self, der: bytes) -> RenewalWindow | None:
        """The ACME server's renewal window (RFC 9773) for a leaf, when
        it offers one; a failure to ask is not a reason to stop renewing
        on the gateway's own schedule. Not asked before this boot's
        account exists: a stored chain is scheduled at boot by the
        gateway's own policy, without reaching the ACME server, and every
        renewal after that consults the window."""
        if self.account is None:
            return None
        try:
            info = await self.acme.renewalInfo(chain=CertificateChainImpl(
                [parse_certificate(der)]))
        except Exception as err:
            log.info("no renewal information: %s", parse_remote(err))
            return None
        if not info.offered:
            return None
        from services.acme.policy import RenewalWindow

        return RenewalWindow(from_epoch(info.startEpochSeconds),
                             from_epoch(info.endEpochSeconds))

    async def serve_stored(self) -> None:
        """A chain the store kept from an earlier boot, for this key and
        name and not expired, is served at once (audit ``reuse``, then
        ``rotate`` as it goes into service); a refused one is audited
        ``reuse refused`` and left for an issuance. Called in the
        gateway's start, so after a reboot the gateway answers TLS when
        the system says it is ready, and again from :meth:`run` only if
        the store did not answer then (``self.store_read``).

        :raises: the store's error, if it does not answer.
        """
        stored = await self._stored(self.store)
        self.store_read = True
        why = reuse_refusal(stored, self.tls_key.public_key(), self.name,
                            self.ctx.clock.now())
        if why is not None:
            if stored is not None:
                self._emit("reuse", "refused", (HANDLE,), "policyViolation",
                           why)
            return
        assert stored is not None
        self.tls.context = tls_context(self.tls_key, stored, self.alpn)
        fp = _fp(stored[0])
        self.serving = fp
        self._emit("reuse", "ok", (HANDLE, fp),
                   detail=f"key {self.key_source}")
        self._emit("rotate", "ok", (HANDLE, fp))
        say(f"serving handle={HANDLE} name={self.name} source=store "
            f"sha256={fp}")

    async def _stored(self, store: Any) -> list[bytes] | None:
        if HANDLE not in list((await store.list()).handles):
            return None
        return await chain_ders((await store.get(handle=HANDLE)).chain)

    async def run(self) -> None:
        # The chain and its renewal wait until every service has started
        # (ctx.ready): capos-init's ready line does not wait on them.
        await self.ctx.ready.wait()
        # Imported here, after the system is up, not before capos-init's
        # fork: nothing else imports the renewal modules, which cost
        # 10.8M of the 719M instructions of the pre-fork imports
        # (callgrind).
        from services.acme.renewal import (
            Binding,
            RenewalScheduler,
            Renewer,
        )

        t0 = time.monotonic()
        acme, store = self.acme, self.store
        renewer = Renewer(
            acme, store,
            RenewalScheduler(self.ctx.clock, random.Random()),
            self.ctx.clock, self.ctx.audit, window_of=self._window,
            service=self.ctx.name)
        binding = Binding(PrivateKeyImpl(self.tls_key),
                          Http01SolverImpl(self.table))
        try:
            if not self.store_read:
                await self.serve_stored()
            reused = self.serving is not None
            source = "source=store"
            if not reused:
                await self._register(acme)
                chain = (await acme.order(
                    account=self.account,
                    identifiers=[{"type": "dns", "value": self.name}],
                    certKey=binding.cert_key, solver=binding.solver,
                )).chain
                await store.put(handle=HANDLE, chain=chain)
                source = f"issued={time.monotonic() - t0:.3f}s"
        except Exception as err:
            reason, detail = parse_remote(err)
            say(f"failed {reason}: {detail}")
            return
        # Serve first; scheduling may ask the ACME server for renewal
        # information, which must not hold up a chain already at hand.
        watch = asyncio.get_running_loop().create_task(
            self.watch_loop(store, source))
        watch.add_done_callback(_report)
        self.tasks.append(watch)
        if reused:
            await renewer.adopt_at_boot({HANDLE: binding})
        else:
            await renewer.adopt(HANDLE, binding)
        await self.renew_loop(acme, renewer)

    async def watch_loop(self, store: Any, source: str) -> None:
        """Serve every chain the store's ``watch`` hands over, from the
        next handshake on."""
        sub = (await store.watch(handle=HANDLE)).subscription
        first = self.serving is None
        initial = self.serving
        while True:
            events = (await sub.events()).events
            for event in events:
                ders = await chain_ders(event.newChain)
                fp = _fp(ders[0])
                if initial is not None and fp == initial:
                    initial = None  # the chain served since the start
                    continue
                initial = None
                self.tls.context = tls_context(self.tls_key, ders,
                                               self.alpn)
                self.serving = fp
                self._emit("rotate", "ok", (HANDLE, fp))
                if first:
                    say(f"serving handle={HANDLE} name={self.name} "
                        f"{source} sha256={fp}")
                    first = False
                else:
                    say(f"rotated handle={HANDLE} sha256={fp}")

    async def renew_loop(self, acme: Any, renewer: Renewer) -> None:
        """Renew when the scheduler says (policy: a third of the
        lifetime left, half for ten days or less, jittered; backoff on
        failure). The new chain goes into the store, whose ``watch``
        brings it to :meth:`watch_loop`."""
        while True:
            due = renewer.next_due()
            wait = (RENEW_POLL if due is None else
                    (due - self.ctx.clock.now()).total_seconds())
            await asyncio.sleep(min(max(wait, 0.0), RENEW_POLL))
            due = renewer.next_due()
            if due is None or due > self.ctx.clock.now():
                continue
            if self.account is None:
                try:
                    await self._register(acme)
                except Exception as err:
                    entry = renewer.failed(HANDLE, *parse_remote(err))
                    say(f"renewal error handle={HANDLE} "
                        f"next={entry.at:%FT%TZ}")
                    continue
            for handle, outcome in await renewer.tick():
                say(f"renewal {outcome} handle={handle}")


def _fp(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).fingerprint(
        hashes.SHA256()).hex()


def _report(task: asyncio.Task[None]) -> None:
    if task.cancelled() or task.exception() is None:
        return
    err = task.exception()
    if "disconnected" in str(err):
        say("stopped: init hung up")
    else:
        say(f"failed internal: {type(err).__name__}: {err}")


async def build(ctx: ServiceContext) -> dict[str, Any]:
    gw = Gateway(ctx)
    gw.tls.start()
    try:
        await gw.serve_stored()
    except Exception as err:  # asked again once the system is ready
        log.info("stored chain not read at start: %s", parse_remote(err))
    loop = asyncio.get_running_loop()
    gw.tasks.append(loop.create_task(serve_http01(ctx.listeners[80],
                                                  gw.table)))
    task = loop.create_task(gw.run())
    task.add_done_callback(_report)
    gw.tasks.append(task)
    return {"http01Solver": Http01SolverImpl(gw.table)}
