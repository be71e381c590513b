@0xf8442001c1ca78c6;
# The capOS boot manifest (docs/DESIGN.md section 3).
#
# A SignedManifest wraps the canonical bytes of one BootManifest. The
# manifest schema stands alone: it imports nothing, and names of enums
# from pki.capnp appear as text so this file can be read without it.

struct SignedManifest {
  manifest @0 :Data;
  # Canonical Cap'n Proto encoding (single segment, unpacked, no framing
  # header) of one BootManifest. Signatures cover exactly these bytes.

  signatures @1 :List(ManifestSignature);
}

struct ManifestSignature {
  keyId @0 :Data;
  # SHA-256 of the signer's raw 32-byte Ed25519 public key.

  signature @1 :Data;
  # Ed25519 signature over SignedManifest.manifest.
}

enum CtMode {
  enforce @0;
  # Chains that lack the preset's SCTs fail verification.

  reportOnly @1;
  # Missing SCTs are audited but do not fail verification.
}

struct BootManifest {
  version @0 :UInt64;
  # Monotonic. A manifest below the installed version is refused.

  issuedAt @1 :Int64;
  expiresAt @2 :Int64;
  # Epoch seconds, UTC. An expired manifest is refused (freeze attack).

  rootBundle @3 :RootBundle;
  ctLogList @4 :CtLogList;
  ctEnforcement @5 :CtMode;
  presets @6 :List(PolicyPreset);
  services @7 :List(ServiceEntry);

  extraAnchors @8 :List(ExtraAnchor);
  # Anchors outside the root program (e.g. "acme-test-root" for Pebble),
  # given only to services whose inputs name "anchor:<name>".

  threshold @9 :UInt8;
  # How many distinct trusted signers a successor manifest needs.

  signers @10 :List(Data);
  # Trusted key ids (SHA-256 of raw Ed25519 public keys).
}

struct RootBundle {
  source @0 :Text;
  nssVersion @1 :Text;
  date @2 :Text;
  certdataSha256 @3 :Data;
  anchors @4 :List(Anchor);
}

struct Anchor {
  der @0 :Data;
  label @1 :Text;
  sha256 @2 :Data;
  trustServerAuth @3 :Bool;
  trustEmail @4 :Bool;
  trustCodeSigning @5 :Bool;

  serverDistrustAfter @6 :Int64;
  emailDistrustAfter @7 :Int64;
  # Epoch seconds; 0 means none. Applies to certificates the root issued
  # after the date, not to the root itself.

  nameConstraintsDer @8 :Data;
  # NameConstraints imposed by the root program (NSS genname.c), DER of
  # the extension value; empty when none.
}

struct ExtraAnchor {
  name @0 :Text;
  der @1 :Data;
}

struct CtLogList {
  version @0 :Text;
  timestamp @1 :Text;

  sha256 @2 :Data;
  # SHA-256 of the exact signed JSON bytes.

  logs @3 :List(CtLogInfo);
}

struct CtLogInfo {
  logId @0 :Data;
  key @1 :Data;
  # SubjectPublicKeyInfo DER.

  url @2 :Text;
  # RFC 6962 logs: the log URL. Tiled logs: the monitoring URL.

  mmd @3 :UInt32;
  state @4 :Text;
  stateSince @5 :Int64;
  temporalStart @6 :Int64;
  temporalEnd @7 :Int64;
  # Epoch seconds; start inclusive, end exclusive; 0 when absent.

  operator @8 :Text;
  description @9 :Text;
  tiled @10 :Bool;
}

struct PolicyPreset {
  name @0 :Text;
  minScts @1 :UInt8;
  requireOcsp @2 :Bool;
  maxChainLength @3 :UInt8;
  permitNameConstraints @4 :Bool;
  clockSkewSeconds @5 :UInt32;
  staplingRequired @6 :Bool;

  allowedAlgorithms @7 :List(Text);
  allowedSignatureSchemes @8 :List(Text);
  # Enumerant names of pki.capnp AsymmetricAlgorithm / SignatureScheme.

  cabfRootProfile @9 :Bool;
  # Hold trust anchors to the CA/B Forum root profile (BR 7.1.2.1.2: a
  # root carries no EKU). Not in pki.capnp's VerificationPolicy; a
  # verifier minted from this preset keeps it fixed like the rest.
}

struct ServiceEntry {
  name @0 :Text;

  module @1 :Text;
  # Python module in the image, e.g. "services.x509.service".

  exports @2 :List(Text);
  grants @3 :List(Grant);

  inputs @4 :List(Text);
  # Manifest sections handed to the service: "roots", "ctLogs",
  # "presets", or "anchor:<ExtraAnchor.name>".

  network @5 :Bool;
  listen @6 :List(UInt16);

  state @7 :Bool;
  # The service keeps state across boots: capos-init hands it a private
  # directory on the data disk as its "stateDir" input.

  devices @8 :List(Text);
  # Virtio-serial ports, by port name (e.g. "capos.audit"): capos-init
  # opens each one and hands the open file only to this service. A port
  # is granted to at most one service.
}

struct Grant {
  name @0 :Text;
  # Local name of the capability in the grantee.

  provider @1 :Text;
  # Name of the service that exports it.

  cap @2 :Text;
  # Exported capability name.
}
