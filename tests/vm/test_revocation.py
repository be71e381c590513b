"""Revocation in the guest (issue #5), on the wire and under faults.

The guest boots the private CA (its OCSP responder and CRL on :8080),
the OCSP client service and the stapling TLS endpoint ``tlsstaple``
(:8443, a must-staple certificate from the CA). The host reaches 8443
through a forward on 127.0.0.1 with real ``openssl s_client -status``;
QEMU's ``filter-dump`` records eth0's traffic for scapy.

For the fault tests the responder must sit across a link QEMU can cut:
the host provisions the CA on the data disk (its key, certificate and
issuance database, and the endpoint's key and chain, whose AIA names
``http://10.0.3.100/ocsp``), then runs the project's own responder over
the same CA directory on 127.0.0.1, which the guest reaches on a
second link (``n1``, eth1) through a guestfwd. ``set_link n1 off``
cuts the responder and leaves eth0, and so ``s_client``, up.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from services._runtime.clock import SystemClock
from services.ca import policy as ca_policy
from services.ca.core import PrivateCA
from services.ca.model import CAConfig, IssuancePolicy, parse_request
from services.ocsp.responder import for_ca
from services.ocsp.server import OcspHttpServer
from services.tlsstaple.service import csr_for
from tests.vm.conftest import build_for_tests
from tools import run
from tools.vm import VM, _free_port, debugfs, make_data_disk

pytestmark = pytest.mark.vm

NAME = "staple.capos.test"
#: The guest's ACME client needs a directory URL to start; nothing
#: listens on this guest-local port, so no traffic leaves the guest.
#: ``no_timer_check``: under TCG on a loaded host the kernel's boot-time
#: IO-APIC timer check can miss ticks and panic ("IO-APIC + timer
#: doesn't work!", seen here once); the check proves nothing in a VM.
NO_ACME = ("capos.setting=acmeDirectory=https://127.0.0.1:9/dir "
           "no_timer_check")
#: Where the guest reaches the host's responder (eth1, guestfwd).
HOST_RESPONDER_IP = "10.0.3.100"
HOST_OCSP_URL = f"http://{HOST_RESPONDER_IP}/ocsp"
#: Validity of the host responder's answers: short, so the fault tests
#: pass refresh (half of it) and nextUpdate in bounded time.
VALIDITY = dt.timedelta(seconds=60)
#: Readiness lines wait about 3x what TCG takes here (DESIGN 4a).
LINE = 90.0


def _image() -> Path:
    manifest, pub = run.build_manifest(run.Report())
    image = run.REPO / "build/image"
    build_for_tests(image, manifest=manifest, pubkey=pub)
    return image


def s_client(port: int, version: str, *extra: str) -> str:
    """``openssl s_client -status`` through the forward; its output."""
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
         "-servername", NAME, "-status", f"-{version}", *extra],
        input="", capture_output=True, text=True, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-2000:]
    return text


def this_update(text: str) -> str:
    m = re.search(r"This Update: (.+)", text)
    assert m, text[-2000:]
    return m.group(1).strip()


def stapled_good(text: str) -> bool:
    return ("OCSP Response Status: successful" in text
            and re.search(r"Cert Status: good", text) is not None)


def records(vm: VM, service: str, operation: str) -> list[dict[str, object]]:
    return [r for r in vm.audit_records()
            if r["service"] == service and r["operation"] == operation]


# -- the CA on the data disk --------------------------------------------


def test_ca_key_and_database_survive_a_reboot(tmp_path: Path) -> None:
    image = _image()
    disk = make_data_disk(tmp_path / "data.img")
    lines = []
    for _ in range(2):
        with VM(image, append=NO_ACME, data_disk=disk) as vm:
            ca = vm.wait_for(r"CAPOS-CA serving", LINE)
            staple = vm.wait_for(r"CAPOS-STAPLE serving", LINE)
            lines.append((ca, staple))
    (ca1, staple1), (ca2, staple2) = lines
    def field(name: str, text: str) -> str:
        m = re.search(rf"{name}=([0-9a-f]+)", text)
        assert m, text
        return m.group(1)

    # The same CA after the power cut (QMP quit) and a second boot: its
    # key and certificate came back from the disk, and the issuance
    # database holds the endpoint's certificate issued in the first.
    assert len(field("ca_sha256", ca1)) == 64
    assert field("ca_sha256", ca1) == field("ca_sha256", ca2)
    assert "records=0 " in ca1 and "records=1 " in ca2
    assert "reused=no" in staple1 and "reused=yes" in staple2
    assert field("serial", staple1) == field("serial", staple2)
    listing = debugfs(disk, "ls -l /services/ca/ca")
    for name in ("ca.key.pem", "ca.cert.pem", "issued.sqlite3",
                 "responder.key.pem"):
        assert name in listing
    assert "Mode:  0600" in debugfs(disk, "stat /services/ca/ca/ca.key.pem")


# -- the staple on the wire ---------------------------------------------


def _server_stream(packets: list, port: int) -> dict[int, bytes]:
    """TCP payload the guest's :port sent, per client port, in order."""
    from scapy.layers.inet import TCP

    segs: dict[int, dict[int, bytes]] = {}
    for p in packets:
        if TCP in p and p[TCP].sport == port and bytes(p[TCP].payload):
            segs.setdefault(p[TCP].dport, {})[p[TCP].seq] = bytes(
                p[TCP].payload)
    out = {}
    for client, by_seq in segs.items():
        out[client] = b"".join(by_seq[s] for s in sorted(by_seq))
    return out


def _handshake_messages(stream: bytes) -> list[tuple[int, bytes]]:
    """(type, body) of each handshake message in clear-text records."""
    body = b""
    while len(stream) >= 5:
        ctype, length = stream[0], int.from_bytes(stream[3:5], "big")
        if ctype == 22:
            body += stream[5:5 + length]
        stream = stream[5 + length:]
    out = []
    while len(body) >= 4:
        n = int.from_bytes(body[1:4], "big")
        out.append((body[0], body[4:4 + n]))
        body = body[4 + n:]
    return out


@pytest.fixture
def stapling_vm(tmp_path: Path) -> Iterator[tuple[VM, int, Path]]:
    port = _free_port()
    pcap = tmp_path / "n0.pcap"
    vm = VM(_image(), append=NO_ACME, hostfwd=[(port, 8443)], pcap=pcap,
            data_disk=make_data_disk(tmp_path / "data.img"))
    with vm:
        vm.wait_for(r"CAPOS-STAPLE health=ok", LINE)
        yield vm, port, pcap


def test_s_client_and_the_pcap_show_the_staple(
        stapling_vm: tuple[VM, int, Path], tmp_path: Path) -> None:
    from scapy.all import rdpcap

    vm, port, pcap = stapling_vm
    keylog = tmp_path / "keys.log"
    tls12 = s_client(port, "tls1_2", "-showcerts")
    tls13 = s_client(port, "tls1_3", "-keylogfile", str(keylog),
                     "-ciphersuites", "TLS_AES_128_GCM_SHA256")
    for text, version in ((tls12, "TLSv1.2"), (tls13, "TLSv1.3")):
        assert stapled_good(text), text[-2000:]
        assert f"Protocol  : {version}" in text or (
            f"New, {version}" in text), text[-2000:]
    # The OCSP section prints the responder's certificate first.
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END "
                      r"CERTIFICATE-----",
                      tls12[tls12.index("Certificate chain"):], re.S)
    leaf, issuer = (x509.load_pem_x509_certificate(p.encode())
                    for p in pems[:2])
    vm.stop()
    streams = _server_stream(list(rdpcap(str(pcap))), 8443)
    assert len(streams) == 2, sorted(streams)
    first, second = (streams[k] for k in sorted(streams))
    # TLS 1.2: the CertificateStatus handshake message (type 22) is in
    # clear, an OCSP response (status_type 1) for the served leaf.
    status = [b for t, b in _handshake_messages(first) if t == 22]
    assert len(status) == 1
    assert status[0][0] == 1
    der = status[0][4:4 + int.from_bytes(status[0][1:4], "big")]
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == leaf.serial_number
    assert response.issuer_key_hash == _key_hash(issuer)
    # The same through scapy's own TLS dissector.
    from scapy.layers.tls.handshake import TLSCertificateStatus
    from scapy.layers.tls.record import TLS

    dissected = TLS(first)
    assert TLSCertificateStatus in dissected
    assert bytes(dissected[TLSCertificateStatus].response) == der
    # TLS 1.3: the Certificate is encrypted; decrypt with the session
    # keys s_client logged and find status_request in the leaf's entry.
    staple13 = _tls13_staple(pcap, keylog, 8443)
    response13 = ocsp.load_der_ocsp_response(staple13)
    assert response13.serial_number == leaf.serial_number
    assert response13.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert second[0] == 22 and second[5] == 2  # ServerHello in clear
    assert _handshake_messages(second)[0][0] == 2


def test_openssl_ocsp_and_the_crl_through_the_forward(
        tmp_path: Path) -> None:
    """``openssl ocsp`` as the client of the guest's responder, and the
    CRL from the guest's distribution point, both over the 127.0.0.1
    forward of the CA's port 8080."""
    import urllib.request

    from services.crl.policy import check_crl

    tls, http = _free_port(), _free_port()
    with VM(_image(), append=NO_ACME, hostfwd=[(tls, 8443), (http, 8080)],
            data_disk=make_data_disk(tmp_path / "data.img")) as vm:
        vm.wait_for(r"CAPOS-STAPLE health=ok", LINE)
        shown = s_client(tls, "tls1_3", "-showcerts")
        pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END "
                          r"CERTIFICATE-----",
                          shown[shown.index("Certificate chain"):], re.S)
        (tmp_path / "leaf.pem").write_text(pems[0] + "\n")
        (tmp_path / "ca.pem").write_text(pems[1] + "\n")
        proc = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(tmp_path / "ca.pem"),
             "-cert", str(tmp_path / "leaf.pem"), "-CAfile",
             str(tmp_path / "ca.pem"), "-url",
             f"http://127.0.0.1:{http}/ocsp"],
            capture_output=True, text=True, timeout=120)
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/crl",
                                    timeout=60) as resp:
            crl = resp.read()
            ctype = resp.headers["Content-Type"]
        answers = records(vm, "ca", "issue")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert "Response verify OK" in text
    assert f"{tmp_path / 'leaf.pem'}: good" in text
    issuer = x509.load_pem_x509_certificate(pems[1].encode())
    checked = check_crl(crl, issuer, dt.datetime.now(dt.UTC))
    assert ctype == "application/pkix-crl"
    assert checked.entries == {}
    assert [r["outcome"] for r in answers] == ["ok"]


def _key_hash(issuer: x509.Certificate) -> bytes:
    from services.ocsp.policy import issuer_hashes

    return issuer_hashes(issuer, hashes.SHA1())[1]


def _tls13_staple(pcap: Path, keylog: Path, port: int) -> bytes:
    """The OCSP response in the TLS 1.3 leaf CertificateEntry's
    status_request extension, decrypted by scapy with the NSS key log."""
    from scapy.all import bind_layers, conf, load_layer, sniff, split_layers
    from scapy.layers.inet import TCP
    from scapy.sessions import TCPSession

    load_layer("tls")
    from scapy.layers.tls.handshake import TLS13Certificate
    from scapy.layers.tls.record import TLS

    # scapy binds TLS to 443 only; this endpoint is on 8443.
    bind_layers(TCP, TLS, sport=port)
    bind_layers(TCP, TLS, dport=port)
    conf.tls_session_enable = True
    conf.tls_nss_filename = str(keylog)
    try:
        packets = sniff(offline=str(pcap), session=TCPSession)
    finally:
        conf.tls_session_enable = False
        conf.tls_nss_filename = None
        split_layers(TCP, TLS, sport=port)
        split_layers(TCP, TLS, dport=port)
    for p in packets:
        if TCP not in p or p[TCP].sport != port:
            continue
        if TLS13Certificate not in p:
            continue
        entry = p[TLS13Certificate].certs[0]
        for ext in entry.ext or []:
            if ext.type == 5:
                # RFC 8446 4.4.2.1: the extension carries a
                # CertificateStatus (status_type, uint24 length, DER).
                raw = bytes(ext)[4:]
                assert raw[0] == 1  # status_type ocsp
                n = int.from_bytes(raw[1:4], "big")
                return raw[4:4 + n]
        raise AssertionError("leaf CertificateEntry has no status_request")
    raise AssertionError("scapy decrypted no TLS 1.3 Certificate")


# -- the responder across a link QEMU cuts --------------------------------


class HostResponder:
    """The project's responder on 127.0.0.1 over a CA directory the
    host made and also put on the guest's data disk."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "ca"
        config = CAConfig(ocsp_url=HOST_OCSP_URL,
                          crl_url=f"http://{HOST_RESPONDER_IP}/crl")
        ca = PrivateCA(self.dir, config, SystemClock())
        self.key = ec.generate_private_key(ec.SECP256R1())
        admitted = ca_policy.admit(
            IssuancePolicy(permitted=(x509.DNSName(NAME),),
                           must_staple=True),
            parse_request(csr_for(self.key, NAME), (), 86400, ()))
        record = ca.issue(admitted)
        self.leaf = x509.load_der_x509_certificate(record.der)
        self.ca_der = ca.cert_der
        ca.responder()
        ca.close()
        self.files = self._disk_files()
        self.ca = PrivateCA(self.dir, config, SystemClock())
        self.server = OcspHttpServer(for_ca(self.ca, VALIDITY).respond,
                                     SystemClock(), prefix="/ocsp")

    def _disk_files(self) -> dict[str, bytes]:
        files = {f"services/ca/ca/{p.name}": p.read_bytes()
                 for p in sorted(self.dir.iterdir())
                 if p.is_file() and not p.name.startswith(".")}
        files["services/tlsstaple/key.pem"] = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        files["services/tlsstaple/chain.pem"] = b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (
                self.leaf, x509.load_der_x509_certificate(self.ca_der)))
        return files

    def __enter__(self) -> HostResponder:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.ca.close()


def _fault_vm(image: Path, disk: Path, responder: HostResponder,
              port: int, **kw: object) -> VM:
    settings = [NO_ACME, "capos.setting=staplePollSeconds=2",
                f"capos.setting=ocspHosts=127.0.0.1,{HOST_RESPONDER_IP}"]
    return VM(image, append=" ".join(settings), data_disk=disk,
              hostfwd=[(port, 8443)],
              aux_guestfwd=[(HOST_RESPONDER_IP, 80, responder.server.port)],
              **kw)  # type: ignore[arg-type]


def test_link_down_keeps_the_staple_until_next_update_then_recovers(
        tmp_path: Path) -> None:
    image = _image()
    port = _free_port()
    with HostResponder(tmp_path) as responder:
        disk = make_data_disk(tmp_path / "data.img", files=responder.files)
        with _fault_vm(image, disk, responder, port) as vm:
            vm.wait_for(r"CAPOS-STAPLE serving .*reused=yes", LINE)
            vm.wait_for(r"CAPOS-STAPLE health=ok", LINE)
            before = s_client(port, "tls1_3")
            assert stapled_good(before), before[-2000:]
            first = this_update(before)
            answered = responder.server.answered
            vm.set_link(False, "n1")
            # The refresh at half the validity cannot reach the
            # responder: the stapler keeps its response and says so.
            degraded = vm.wait_for(r"CAPOS-STAPLE health=degraded",
                                   VALIDITY.total_seconds() + LINE)
            kept = s_client(port, "tls1_3")
            assert stapled_good(kept), kept[-2000:]
            assert this_update(kept) == first
            # At nextUpdate it stops stapling, and never staples it again.
            vm.wait_for(r"CAPOS-STAPLE health=failing",
                        VALIDITY.total_seconds() + LINE)
            gone = s_client(port, "tls1_2")
            assert "OCSP response: no response sent" in gone, gone[-2000:]
            assert responder.server.answered == answered
            vm.set_link(True, "n1")
            back = vm.wait_for(r"CAPOS-STAPLE health=ok", LINE, skip=1)
            again = s_client(port, "tls1_3")
            assert stapled_good(again), again[-2000:]
            assert this_update(again) != first
            refreshes = records(vm, "tlsstaple", "refresh")
            stops = records(vm, "tlsstaple", "stopStapling")
    assert "thisUpdate=" in back
    assert "nextUpdate=" in degraded
    refused = [r for r in refreshes if r["outcome"] == "refused"]
    assert refused and all(r["reason"] == "ocspUnavailable"
                           for r in refused)
    assert "keeping staple until" in str(refused[0]["detail"])
    assert [(r["outcome"], r["reason"]) for r in stops] == [
        ("error", "mustStapleMissing")]
    assert refreshes[-1]["outcome"] == "ok"
    serial = f"serial={responder.leaf.serial_number:x}"
    assert serial in stops[0]["subject"]  # type: ignore[operator]


def test_guest_clock_past_next_update_staples_nothing(
        tmp_path: Path) -> None:
    image = _image()
    port = _free_port()
    with HostResponder(tmp_path) as responder:
        disk = make_data_disk(tmp_path / "data.img", files=responder.files)
        with _fault_vm(image, disk, responder, port) as vm:
            vm.wait_for(r"CAPOS-STAPLE health=ok", LINE)
            fresh = s_client(port, "tls1_2")
            assert stapled_good(fresh), fresh[-2000:]
        assert ".ocsp.der" in debugfs(disk, "ls /services/tlsstaple/staples")
        # Same disk (the staple cached on it), the guest's clock two
        # hours ahead: the cached response and every one the responder
        # signs now are past their nextUpdate in the guest's time.
        ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
        with _fault_vm(image, disk, responder, port,
                       rtc_base=ahead.strftime("%Y-%m-%dT%H:%M:%S")) as vm:
            vm.wait_for(r"CAPOS-STAPLE serving", LINE)
            for version in ("tls1_2", "tls1_3"):
                stale = s_client(port, version)
                assert "OCSP response: no response sent" in stale, (
                    stale[-2000:])
            refreshes = records(vm, "tlsstaple", "refresh")
            loaded = records(vm, "tlsstaple", "loadCache")
            checks = records(vm, "ocsp", "status")
    assert loaded == []
    # The responder answered; its answers were refused as stale, first
    # by the OcspResponder capability, then by the stapler.
    assert refreshes and all(r["outcome"] == "refused" for r in refreshes)
    assert all("ocspStale" in str(r["detail"]) for r in refreshes)
    # (ocspStale is the problem; the schema's FailureReason for it is
    # ocspUnavailable, services/ocsp/errors.py.)
    assert checks and {(r["outcome"], r["reason"]) for r in checks} == {
        ("refused", "ocspUnavailable")}
    assert all(str(r["detail"]).startswith("ocspStale: nextUpdate")
               for r in checks)
