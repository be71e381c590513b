@0x827d70f15e6d238f;
# capOS PKI: certificates, trust stores, chain verification, Certificate
# Transparency, revocation, pinning, ACME issuance, TLS configuration and
# the private CA. Transcribed from certificates-tls-ct-proposal; the types
# the proposal names but omits follow RFC 5280 (names, extensions),
# RFC 6962 (CT) and RFC 8555 (ACME). PrivateKey, PublicKey and AuditLog are
# minimal stand-ins for the key-management and monitoring proposals.

# ---------------------------------------------------------------------
# Names and extensions (RFC 5280 section 4.1.2.4 and 4.2)
# ---------------------------------------------------------------------

struct AttributeTypeAndValue {
  # One attribute of a relative distinguished name.
  oid @0 :Text;    # dotted-decimal attribute type, e.g. "2.5.4.3"
  value @1 :Text;  # the value as a string
}

struct RelativeDistinguishedName {
  # A set of attributes; almost always exactly one.
  attributes @0 :List(AttributeTypeAndValue);
}

struct DistinguishedName {
  # An X.501 Name as it appears in subject and issuer fields.
  rdns @0 :List(RelativeDistinguishedName);
  der @1 :Data;       # the exact DER encoding, for byte comparison
  rfc4514 @2 :Text;   # RFC 4514 string, for display only
}

struct GeneralName {
  # RFC 5280 section 4.2.1.6 GeneralName. x400Address and ediPartyName
  # are not carried.
  union {
    dnsName @0 :Text;
    ipAddress @1 :Data;       # 4 or 16 octets (or 8/32 in constraints)
    rfc822Name @2 :Text;
    uri @3 :Text;
    directoryName @4 :DistinguishedName;
    registeredId @5 :Text;    # dotted-decimal OID
    otherName :group {
      typeId @6 :Text;        # dotted-decimal OID
      value @7 :Data;         # DER of the value
    }
  }
}

struct GeneralSubtree {
  # RFC 5280 section 4.2.1.10; minimum and maximum are always 0/absent.
  base @0 :GeneralName;
}

struct NameConstraints {
  # RFC 5280 section 4.2.1.10.
  permitted @0 :List(GeneralSubtree);
  excluded @1 :List(GeneralSubtree);
}

struct KeyUsageFlags {
  # RFC 5280 section 4.2.1.3, one flag per bit.
  digitalSignature @0 :Bool;
  contentCommitment @1 :Bool;
  keyEncipherment @2 :Bool;
  dataEncipherment @3 :Bool;
  keyAgreement @4 :Bool;
  keyCertSign @5 :Bool;
  crlSign @6 :Bool;
  encipherOnly @7 :Bool;
  decipherOnly @8 :Bool;
}

enum KnownEku {
  # Extended key usages the platform recognises (RFC 5280 4.2.1.12).
  other @0;              # see ExtendedKeyUsage.oid
  serverAuth @1;
  clientAuth @2;
  codeSigning @3;
  emailProtection @4;
  timeStamping @5;
  ocspSigning @6;
  anyExtendedKeyUsage @7;
}

struct ExtendedKeyUsage {
  # One extended key usage purpose.
  oid @0 :Text;          # always set, dotted-decimal
  known @1 :KnownEku;    # `other` when the OID is not in KnownEku
}

enum HashAlgorithm {
  # Digest algorithms for fingerprints, pins and SCTs.
  sha1 @0;
  sha256 @1;
  sha384 @2;
  sha512 @3;
}

enum SignatureScheme {
  # Signature algorithms, named as in TLS 1.3 (RFC 8446 section 4.2.3).
  rsaPkcs1Sha256 @0;
  rsaPkcs1Sha384 @1;
  rsaPkcs1Sha512 @2;
  rsaPssSha256 @3;
  rsaPssSha384 @4;
  rsaPssSha512 @5;
  ecdsaP256Sha256 @6;
  ecdsaP384Sha384 @7;
  ecdsaP521Sha512 @8;
  ed25519 @9;
  ed448 @10;
  rsaPkcs1Sha1 @11;      # legacy; never in a default allow-list
  ecdsaSha1 @12;         # legacy; never in a default allow-list
}

enum AsymmetricAlgorithm {
  # Public key algorithm and size.
  rsa2048 @0;
  rsa3072 @1;
  rsa4096 @2;
  ecdsaP256 @3;
  ecdsaP384 @4;
  ecdsaP521 @5;
  ed25519 @6;
  ed448 @7;
}

enum RevocationReason {
  # RFC 5280 section 5.3.1 CRLReason codes; code 7 is not used.
  unspecified @0;
  keyCompromise @1;
  caCompromise @2;
  affiliationChanged @3;
  superseded @4;
  cessationOfOperation @5;
  certificateHold @6;
  unused7 @7;            # placeholder: RFC 5280 leaves value 7 unused
  removeFromCrl @8;
  privilegeWithdrawn @9;
  aaCompromise @10;
}

# ---------------------------------------------------------------------
# Keys (minimal; the key-management proposal owns the full surface)
# ---------------------------------------------------------------------

interface PublicKey {
  # A public key. Callers verify signatures through it.
  der @0 () -> (encoded :Data);
  # DER SubjectPublicKeyInfo.
  verify @1 (message :Data, signature :Data, scheme :SignatureScheme)
      -> (ok :Bool);
  algorithm @2 () -> (algorithm :AsymmetricAlgorithm);
}

interface PrivateKey {
  # Secret key material whose only contract is "compute with me".
  sign @0 (message :Data, scheme :SignatureScheme) -> (signature :Data);
  publicKey @1 () -> (pk :PublicKey);
  algorithm @2 () -> (algorithm :AsymmetricAlgorithm);
  certificationRequest @3 (names :List(AcmeIdentifier)) -> (der :Data);
  # A PKCS#10 request for these identifiers signed by this key: proof of
  # possession for ACME without handing the key to the ACME client.
}

# ---------------------------------------------------------------------
# Audit (minimal; the system-monitoring proposal owns the full surface)
# ---------------------------------------------------------------------

struct AuditRecord {
  # One security decision, as services/_runtime/audit.AuditEvent.
  atEpochMillis @0 :Int64;
  service @1 :Text;
  capability @2 :Text;
  operation @3 :Text;
  outcome @4 :Text;          # "ok", "refused" or "error"
  reason @5 :Text;           # FailureReason name, or ""
  subject @6 :List(Text);    # fingerprints, handles, names
  detail @7 :Text;
  correlation @8 :Text;
}

interface AuditLog {
  # Append-only audit log granted to every service.
  record @0 (event :AuditRecord) -> ();
  since @1 (index :UInt64) -> (records :List(AuditRecord), next :UInt64);
  # Records from `index` on, and the index to ask for next time.
}

# ---------------------------------------------------------------------
# Certificates and chains
# ---------------------------------------------------------------------

interface Certificate {
  # One parsed X.509 certificate.
  der @0 () -> (encoded :Data);
  # Raw DER encoding: for logging, CT submission, export.
  subject @1 () -> (name :DistinguishedName);
  issuer @2 () -> (name :DistinguishedName);
  serial @3 () -> (bytes :Data);
  notBefore @4 () -> (epochSeconds :Int64);
  notAfter @5 () -> (epochSeconds :Int64);
  subjectAltNames @6 () -> (names :List(GeneralName));
  publicKey @7 () -> (pk :PublicKey);
  # Public key as a cap; callers verify signatures through this.
  keyUsage @8 () -> (usage :KeyUsageFlags);
  extendedKeyUsage @9 () -> (ekus :List(ExtendedKeyUsage));
  basicConstraints @10 () -> (ca :Bool, pathLenConstraint :Int32);
  # pathLenConstraint is -1 when absent.
  nameConstraints @11 () -> (constraints :NameConstraints);
  embeddedScts @12 () -> (scts :List(SignedCertificateTimestamp));
  # Embedded SCTs (RFC 6962 section 3.3).
  mustStaple @13 () -> (required :Bool);
  # Must-staple marker (RFC 7633).
  fingerprint @14 (hash :HashAlgorithm) -> (digest :Data);
  info @15 () -> (kind :CertificateKind,
                  algorithm :AsymmetricAlgorithm);
}

interface CertificateChain {
  # Leaf first, root (or closest-to-root) last. Length-one chains are
  # permitted (self-signed leaf).
  certificates @0 () -> (chain :List(Certificate));
  leaf @1 () -> (cert :Certificate);
  verify @2 (against :TrustStore,
             verifier :CertVerifier,
             atEpochSeconds :Int64,
             hostname :Text)
      -> (outcome :VerificationOutcome);
  # Shortcut for verifier.verifyChain(this, against, tlsServerAuth...).
}

enum CertificateKind {
  endEntity @0;
  intermediate @1;
  trustAnchor @2;
  crossSigned @3;
}

# ---------------------------------------------------------------------
# Trust stores
# ---------------------------------------------------------------------

interface TrustStore {
  # A set of trust anchors. Attenuation is `restrict`, never a flag.
  anchors @0 () -> (certs :List(Certificate));
  restrict @1 (filter :TrustFilter) -> (subset :TrustStore);
  # A fresh store that no longer references anchors outside the filter.
  addAnchor @2 (cert :Certificate, pin :AnchorPin) -> ();
  # Fails with policyViolation on a read-only store.
  removeAnchor @3 (selector :AnchorSelector) -> ();
  # Matches either fingerprint or subject DN.
  version @4 () -> (n :UInt64);
  # Monotonic, bumped on every mutation.
  anchorInfo @5 () -> (anchors :List(AnchorInfo), version :UInt64,
                       digest :Data);
  # Every anchor with the metadata a verifier enforces, as of `version`.
  # `digest` is the store's content digest (see `snapshot`).
  snapshot @6 () -> (version :UInt64, digest :Data, writable :Bool);
  # The cheap cache check a verifier makes before each verification.
  # `digest` is SHA-256 over the sorted lines
  # "<sha256 hex> <sorted purposes> <sorted purpose=distrust pairs>",
  # one per anchor, joined by "\n": it names the content, so two stores
  # with the same anchors and metadata share one digest. A verifier
  # never trusts it: it recomputes the digest of what `anchorInfo`
  # returned and caches under its own figure (services/x509/
  # verifier_impl.py). `writable` is whether this capability carries
  # write authority (addAnchor/removeAnchor).
}

struct AnchorInfo {
  # One trust anchor and what it is trusted for (root-program metadata:
  # Mozilla's CKA_TRUST_* bits and CKA_NSS_*_DISTRUST_AFTER).
  cert @0 :Certificate;
  label @1 :Text;                        # root-program nickname
  purposes @2 :List(CertPurpose);        # the only purposes it anchors
  distrustAfter @3 :List(PurposeDistrust);
  # Per purpose: certificates whose notBefore is after the date are not
  # trusted through this anchor for that purpose. Absent = no date.
}

struct PurposeDistrust {
  purpose @0 :CertPurpose;
  epochSeconds @1 :Int64;                # never 0; absence means none
}

struct TrustFilter {
  purposes @0 :List(CertPurpose);        # only anchors usable for these
  fingerprints @1 :List(Data);           # allow-list by SHA-256
  subjects @2 :List(Data);               # allow-list by subject DN DER
  excludeFingerprints @3 :List(Data);    # deny-list
}

struct AnchorPin {
  spkiHash @0 :Data;                     # SHA-256 of SPKI
  hashAlgorithm @1 :HashAlgorithm;
}

struct AnchorSelector {
  union {
    fingerprint @0 :Data;
    subject @1 :DistinguishedName;
  }
}

enum CertPurpose {
  tlsServerAuth @0;
  tlsClientAuth @1;
  codeSigning @2;
  emailSmime @3;
  clientIdentity @4;
  ctLog @5;             # TrustStore of CT log public keys
  ocspSigning @6;
  webauthnRoot @7;      # FIDO metadata / attestation roots
}

# ---------------------------------------------------------------------
# Verifier
# ---------------------------------------------------------------------

interface CertVerifier {
  # Policy is fixed when the verifier is minted; no method lowers it.
  verifyChain @0 (chain :CertificateChain,
                  trust :TrustStore,
                  purpose :CertPurpose,
                  atEpochSeconds :Int64,
                  hostname :Text)
      -> (outcome :VerificationOutcome);
  verifySignature @1 (cert :Certificate,
                      message :Data,
                      signature :Data,
                      scheme :SignatureScheme)
      -> (ok :Bool);
  # A single signature check against a cert's public key.
  policy @2 () -> (policy :VerificationPolicy);
  verifyChainWithStaple @3 (chain :CertificateChain,
                            trust :TrustStore,
                            purpose :CertPurpose,
                            atEpochSeconds :Int64,
                            hostname :Text,
                            staple :Data)
      -> (outcome :VerificationOutcome);
  # verifyChain with revocation evidence the caller holds: `staple` is
  # the DER OCSP response (RFC 6960) stapled in the caller's TLS
  # handshake (RFC 6066 status_request); empty means none, and then
  # this is verifyChain. The verifier checks it itself (signature,
  # responder, CertID, freshness); other evidence comes only from the
  # CrlStore and OcspResponder capabilities it was minted with, never
  # from a URL fetched on its own authority. Revocation passes with a
  # good response, a fresh CRL or a leaf valid ten days or less; a
  # must-staple leaf (or any under staplingRequired) needs a good
  # staple (mustStapleMissing; an unusable one is ocspUnavailable);
  # without evidence requireOcsp fails ocspUnavailable, otherwise the
  # chain is valid with ocspStatus = responderUnreachable.
}

struct VerificationPolicy {
  minScts @0 :UInt8;
  ctLogs @1 :TrustStore;                  # which logs count; may be null
  allowedAlgorithms @2 :List(AsymmetricAlgorithm);
  allowedSignatureSchemes @3 :List(SignatureScheme);
  requireOcsp @4 :Bool;
  maxChainLength @5 :UInt8;
  # Certificates on the built path, leaf and anchor included (so N
  # admits N-2 intermediates); self-issued intermediates do not count.
  permitNameConstraints @6 :Bool;
  clockSkewSeconds @7 :UInt32;
  staplingRequired @8 :Bool;
  # When set, certificates not carrying the must-staple extension are
  # still required to deliver a stapled OCSP response.
}

struct VerificationOutcome {
  union {
    valid @0 :ValidChain;
    invalid @1 :VerificationFailure;
  }
}

struct ValidChain {
  anchor @0 :Certificate;
  sctCount @1 :UInt8;
  ocspStatus @2 :OcspStatus;
  notAfter @3 :Int64;                     # min notAfter across the chain
  path @4 :List(Certificate);
  # The verified path, leaf first, anchor last: what was actually built,
  # not the list the peer sent. PinSet matches pins against it.
  revocation @5 :Text;
  # What revocation passed on: "ocspStaple", "ocsp", "crl", "shortLived"
  # or "anchor"; or "softFail" (ocspStatus responderUnreachable or
  # unknown) when there was no evidence and requireOcsp is off. Then
  # ": " and the notes (what was seen and not used, and why).
}

struct VerificationFailure {
  reason @0 :FailureReason;
  detail @1 :Text;
}

enum FailureReason {
  unknownAnchor @0;
  expired @1;
  notYetValid @2;
  signatureMismatch @3;
  nameMismatch @4;
  insufficientScts @5;
  revoked @6;
  ocspUnavailable @7;
  weakAlgorithm @8;
  policyViolation @9;
  badEku @10;
  chainTooLong @11;
  nameConstraintViolation @12;
  mustStapleMissing @13;
  pinMismatch @14;
}

# ---------------------------------------------------------------------
# Certificate Transparency (RFC 6962)
# ---------------------------------------------------------------------

struct SignedCertificateTimestamp {
  logId @0 :Data;                  # SHA-256 of the log's public key
  timestamp @1 :UInt64;            # ms since epoch
  extensions @2 :Data;
  signature @3 :Data;
  hashAlgorithm @4 :HashAlgorithm;
  signatureAlgorithm @5 :SignatureScheme;
  origin @6 :SctOrigin;
}

enum SctOrigin {
  embedded @0;        # X.509 extension (RFC 6962 section 3.3)
  ocspStapled @1;     # OCSP response extension
  tlsExtension @2;    # TLS handshake extension
}

interface CtLog {
  addChain @0 (chain :CertificateChain)
      -> (sct :SignedCertificateTimestamp);
  addPreChain @1 (precert :CertificateChain)
      -> (sct :SignedCertificateTimestamp);
  signedTreeHead @2 () -> (sth :SignedTreeHead);
  entries @3 (start :UInt64, count :UInt32)
      -> (entries :List(LogEntry));
  consistencyProof @4 (first :UInt64, second :UInt64)
      -> (proof :List(Data));
  info @5 () -> (name :Text,
                 publicKey :PublicKey,
                 url :Text);
}

interface CtMonitor {
  # Watch for certificates issued under a subject-name pattern.
  watchSubject @0 (pattern :Text) -> (subscription :CtSubscription);
  listWatched @1 () -> (subscriptions :List(CtSubscription));
}

interface CtSubscription {
  events @0 () -> (events :List(CtEvent));   # since last call
  cancel @1 () -> ();
}

struct SignedTreeHead {
  treeSize @0 :UInt64;
  timestamp @1 :UInt64;
  rootHash @2 :Data;
  signature @3 :Data;
}

struct LogEntry {
  index @0 :UInt64;
  timestamp @1 :UInt64;
  entryType @2 :CtEntryType;
  certificate @3 :Data;          # ASN.1 TimestampedEntry payload
}

enum CtEntryType {
  x509Entry @0;
  precertEntry @1;
}

struct CtEvent {
  union {
    observed @0 :CtObservation;
    error @1 :CtWatchError;
  }
}

struct CtObservation {
  log @0 :Text;                  # log name or URL
  index @1 :UInt64;
  certificate @2 :Certificate;
  matched @3 :Text;              # matched pattern
}

struct CtWatchError {
  # A monitoring failure against one log (unreachable, bad proof...).
  log @0 :Text;                  # log name or URL
  reason @1 :FailureReason;
  detail @2 :Text;
  atEpochMillis @3 :Int64;
}

# ---------------------------------------------------------------------
# Revocation
# ---------------------------------------------------------------------

interface OcspResponder {
  status @0 (cert :Certificate,
             issuer :Certificate,
             atEpochSeconds :Int64)
      -> (response :OcspResponse);
}

interface OcspStapler {
  currentResponse @0 () -> (response :OcspResponse);
  refresh @1 () -> ();
  setCertificate @2 (chain :CertificateChain,
                     responder :OcspResponder) -> ();
}

interface CrlStore {
  crlFor @0 (issuer :DistinguishedName) -> (crl :Data);
  contains @1 (issuer :DistinguishedName, serial :Data)
      -> (revoked :Bool);
}

struct OcspResponse {
  der @0 :Data;                   # RFC 6960 DER-encoded response
  status @1 :OcspStatus;
  thisUpdate @2 :Int64;
  nextUpdate @3 :Int64;
  revocationTime @4 :Int64;       # epoch seconds; 0 unless revoked
  revocationReason @5 :RevocationReason;  # meaningful only if revoked
}

enum OcspStatus {
  good @0;
  revoked @1;
  unknown @2;
  stapledAbsent @3;               # handshake carried no stapled response
  responderUnreachable @4;
}

# ---------------------------------------------------------------------
# Pinning
# ---------------------------------------------------------------------

interface PinSet {
  # Verification succeeds only if a cert in the chain matches a pin.
  pins @0 () -> (entries :List(Pin));
  enforce @1 (chain :CertificateChain) -> (outcome :VerificationOutcome);
  addPin @2 (pin :Pin) -> ();
  removePin @3 (pin :Pin) -> ();
  info @4 () -> (mode :PinMode, expires :Int64);
}

struct Pin {
  spkiHash @0 :Data;
  hashAlgorithm @1 :HashAlgorithm;
}

enum PinMode {
  enforce @0;         # fail closed on mismatch
  reportOnly @1;      # succeed; emit audit event
}

# ---------------------------------------------------------------------
# Issuance and renewal (RFC 8555)
# ---------------------------------------------------------------------

interface AcmeAccount {
  # An ACME account registered under an account key.
  info @0 () -> (url :Text, contact :List(Text), status :Text,
                 termsOfServiceAgreed :Bool);
  rollover @1 (newKey :PrivateKey) -> ();
  # Account key rollover (RFC 8555 section 7.3.5): the account is
  # controlled by newKey from a 200 on; on any failure (409: the key
  # already has an account) the old key stays in use.
}

struct AcmeDirectoryMeta {
  # RFC 8555 section 7.1.1 directory "meta" object.
  termsOfService @0 :Text;
  website @1 :Text;
  caaIdentities @2 :List(Text);
  externalAccountRequired @3 :Bool;
}

struct AcmeChallenge {
  # One challenge of an authorization (RFC 8555 section 8).
  type @0 :AcmeChallengeType;
  token @1 :Text;
  url @2 :Text;
  identifier @3 :AcmeIdentifier;
  keyAuthorization @4 :Text;
}

interface AcmeClient {
  register @0 (accountKey :PrivateKey, contact :List(Text))
      -> (account :AcmeAccount);
  order @1 (account :AcmeAccount,
            identifiers :List(AcmeIdentifier),
            certKey :PrivateKey,
            solver :ChallengeSolver)
      -> (chain :CertificateChain);
  renew @2 (chain :CertificateChain,
            certKey :PrivateKey,
            solver :ChallengeSolver)
      -> (chain :CertificateChain);
  revoke @3 (cert :Certificate, reason :RevocationReason) -> ();
  directory @4 () -> (url :Text, meta :AcmeDirectoryMeta);
  renewalInfo @5 (chain :CertificateChain)
      -> (offered :Bool, startEpochSeconds :Int64, endEpochSeconds :Int64);
  # RFC 9773 suggestedWindow for the chain's leaf; offered = false when
  # the server's directory has no renewalInfo.
}

interface ChallengeSolver {
  # Scoped to one DNS zone, HTTP path prefix or ALPN slot.
  solve @0 (challenge :AcmeChallenge) -> (ok :Bool);
  cleanup @1 (challenge :AcmeChallenge) -> ();
  supports @2 () -> (types :List(AcmeChallengeType));
}

enum AcmeChallengeType {
  http01 @0;
  dns01 @1;
  tlsAlpn01 @2;
}

struct AcmeIdentifier {
  type @0 :Text;      # "dns", "ip", ...
  value @1 :Text;
}

interface CertificateStore {
  put @0 (handle :Text, chain :CertificateChain) -> ();
  get @1 (handle :Text) -> (chain :CertificateChain);
  list @2 () -> (handles :List(Text));
  delete @3 (handle :Text) -> ();
  watch @4 (handle :Text) -> (subscription :CertSubscription);
}

interface CertSubscription {
  events @0 () -> (events :List(CertRotationEvent));
  cancel @1 () -> ();
}

struct CertRotationEvent {
  handle @0 :Text;
  newChain @1 :CertificateChain;
  rotatedAt @2 :Int64;
}

# ---------------------------------------------------------------------
# Private CA (Phase 9)
# ---------------------------------------------------------------------

struct IssuancePolicy {
  # What a CertificateAuthority cap may issue; fixed when it is minted.
  nameSubtrees @0 :NameConstraints;
  maxLifetimeSeconds @1 :UInt32;
  keyTypes @2 :List(AsymmetricAlgorithm);
  mustStaple @3 :Bool;          # every issued cert carries must-staple
}

struct IssuanceRequest {
  # A request to a CertificateAuthority.
  csr @0 :Data;                 # DER PKCS#10 request
  subjectAltNames @1 :List(GeneralName);
  lifetimeSeconds @2 :UInt32;
  purposes @3 :List(CertPurpose);
}

struct IssuedRecord {
  serial @0 :Data;
  fingerprint @1 :Data;         # SHA-256
  notAfter @2 :Int64;
  revoked @3 :Bool;
  revocationReason @4 :RevocationReason;
  revokedAt @5 :Int64;          # epoch seconds; 0 unless revoked
}

interface CertificateAuthority {
  issue @0 (request :IssuanceRequest) -> (chain :CertificateChain);
  revoke @1 (serial :Data, reason :RevocationReason) -> ();
  listIssued @2 () -> (records :List(IssuedRecord));
  policy @3 () -> (policy :IssuancePolicy);
  narrow @4 (policy :IssuancePolicy) -> (ca :CertificateAuthority);
  # A new capability whose policy is this one narrowed by `policy`:
  # subtrees only inside this one's (excluded subtrees accumulate),
  # maxLifetimeSeconds no longer (0 keeps it), keyTypes a subset
  # (empty keeps them), mustStaple never dropped. Asking for more fails
  # with policyViolation naming the dimension.
}

# ---------------------------------------------------------------------
# TLS configuration
# ---------------------------------------------------------------------

interface TlsServerConfig {
  key @0 () -> (k :PrivateKey);
  chainSource @1 () -> (store :CertificateStore, handle :Text);
  stapler @2 () -> (s :OcspStapler);
  clientVerifier @3 () -> (v :CertVerifier, trust :TrustStore);
  alpn @4 () -> (protocols :List(Text));
  minVersion @5 () -> (v :TlsVersion);
  cipherPolicy @6 () -> (policy :CipherPolicy);
}

interface TlsClientConfig {
  verifier @0 () -> (v :CertVerifier);
  trust @1 () -> (t :TrustStore);
  pins @2 () -> (p :PinSet);      # null for no pinning
  clientAuth @3 () -> (k :PrivateKey, chain :CertificateChain);
  alpn @4 () -> (protocols :List(Text));
  minVersion @5 () -> (v :TlsVersion);
  serverNameOverride @6 () -> (host :Text);
}

enum TlsVersion {
  tls12 @0;
  tls13 @1;
}

enum CipherPolicy {
  modern @0;          # TLS 1.3 + AEAD only; Mozilla "modern"
  intermediate @1;    # TLS 1.2 + 1.3; Mozilla "intermediate"
  legacy @2;          # explicit opt-in for ancient peers
}
