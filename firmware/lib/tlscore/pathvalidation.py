# Path validation (RFC 5280 §6, reduced to what a TLS client or server on the board
# needs): verify_chain builds a path from the peer's leaf to one of our trust anchors
# and checks signatures (PKCS#1 v1.5), validity, CA constraints, name constraints (in
# nameconstraints.py, loaded only when a CA on the path has them), key usage by key
# exchange and the host name (hostname.py). Every failure is a TLSError carrying the
# alert to send and a reason that names the certificate. The caller passes `now` in
# unix seconds.

from .constants import (
    BAD_CERTIFICATE,
    CERTIFICATE_EXPIRED,
    CERTIFICATE_UNKNOWN,
    MAX_CERTIFICATE_CHAIN,
    UNKNOWN_CA,
    UNSUPPORTED_CERTIFICATE,
)
from .errors import TLSError
from .hostname import match_hostname
from .pkcs1 import verify as pkcs1_verify
from .x509 import (
    EKU_ANY,
    EKU_CLIENT_AUTH,
    EKU_SERVER_AUTH,
    KU_DIGITAL_SIGNATURE,
    KU_KEY_CERT_SIGN,
    KU_KEY_ENCIPHERMENT,
    RSAPublicKey,
    format_time,
    parse_certificate,
    who,
)

# Policy. Keys below MIN_RSA_BITS are refused on the leaf and on intermediates; keys above
# MAX_RSA_BITS are refused anywhere, because one public operation on them would stall
# the board for seconds.
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
# Hashes we refuse in a signature we have to verify (the anchor's own is never checked).
WEAK_SIGNATURE_HASHES = ("sha1",)


def _check_signature(backend, cert, issuers, cache=None):
    # Returns the first issuer whose key verifies cert's signature, or None.
    h = cert.signature_hash
    if h is None:
        raise TLSError(
            UNSUPPORTED_CERTIFICATE,
            "certificate %s is signed with unsupported algorithm %s"
            % (who(cert), cert.signature_algorithm_oid),
        )
    if h in WEAK_SIGNATURE_HASHES:
        raise TLSError(
            BAD_CERTIFICATE,
            "certificate %s is signed with weak hash %s" % (who(cert), h),
        )
    if h not in backend.hash_names:
        raise TLSError(
            UNSUPPORTED_CERTIFICATE,
            "certificate %s is signed with %s, which this device cannot compute" % (who(cert), h),
        )
    for issuer in issuers:
        key = issuer.public_key
        if not isinstance(key, RSAPublicKey):
            continue
        if key.bits > MAX_RSA_BITS:
            raise TLSError(
                UNSUPPORTED_CERTIFICATE,
                "RSA key of %d bits in %s is too large" % (key.bits, who(issuer)),
            )
        if cache is not None and cache.check(backend, cert, issuer):
            return issuer
        if pkcs1_verify(backend, key.n, key.e, h, cert.tbs, cert.signature):
            if cache is not None:
                cache.add(backend, cert, issuer)
            return issuer
    return None


def _build_path(backend, leaf, presented, anchors, cache):
    # Returns (path, anchor): path runs from the leaf up to, not including, the anchor.
    # Each step uses up one presented certificate, so the path is never longer than
    # the chain, which verify_chain has already bounded.
    for anchor in anchors:
        if anchor.der == leaf.der:
            return [], anchor
    path = [leaf]
    cur = leaf
    remaining = list(presented)
    while True:
        # Anchors first: a chain that also carries the root (or a cross-signed copy of
        # an anchor) should end at our copy, not continue through the presented one.
        by_anchor = [a for a in anchors if a.subject == cur.issuer]
        by_chain = [c for c in remaining if c.subject == cur.issuer]
        if not by_anchor and not by_chain:
            raise TLSError(UNKNOWN_CA, "certificate %s is not signed by a trusted CA" % who(cur))
        anchor = _check_signature(backend, cur, by_anchor, cache)
        if anchor is not None:
            return path, anchor
        if not by_chain:
            # a trusted CA of that name exists, but its key did not sign this: an
            # impostor CA (or a re-keyed one) is an unknown CA, as for OpenSSL
            raise TLSError(
                UNKNOWN_CA,
                "certificate %s is not signed by a trusted CA (a trusted CA has its issuer's name, but not its key)"
                % who(cur),
            )
        issuer = _check_signature(backend, cur, by_chain, cache)
        if issuer is None:
            raise TLSError(BAD_CERTIFICATE, "signature on %s does not verify" % who(cur))
        remaining.remove(issuer)
        path.append(issuer)
        cur = issuer


def _check_validity(cert, now):
    if now < cert.not_before:
        raise TLSError(
            CERTIFICATE_EXPIRED,
            "certificate %s is not valid before %s" % (who(cert), format_time(cert.not_before)),
        )
    if now > cert.not_after:
        raise TLSError(
            CERTIFICATE_EXPIRED,
            "certificate %s expired on %s" % (who(cert), format_time(cert.not_after)),
        )


def _check_issuer(cert, below, is_anchor):
    # below: the certificates this one vouches for, excluding the leaf, which is what
    # pathLenConstraint counts (self-issued ones excepted, RFC 5280 §4.2.1.9).
    bc = cert.basic_constraints
    if bc is None and is_anchor and cert.version == 1:
        return
    if bc is None or not bc[0]:
        raise TLSError(UNKNOWN_CA, "certificate %s is not a CA (basicConstraints)" % who(cert))
    if cert.key_usage is not None and not cert.key_usage & KU_KEY_CERT_SIGN:
        raise TLSError(
            UNKNOWN_CA, "CA certificate %s may not sign certificates (keyUsage)" % who(cert)
        )
    if bc[1] is not None:
        count = 0
        for c in below:
            if not c.is_self_issued():
                count += 1
        if count > bc[1]:
            raise TLSError(
                UNKNOWN_CA,
                "CA certificate %s allows %d intermediates below it, found %d"
                % (who(cert), bc[1], count),
            )


# What the leaf must allow, by the role it plays (extendedKeyUsage) and by what its key
# does (keyUsage, RFC 5246 §7.4.2, RFC 5280 §4.2.1.3): a server's key decrypts the
# premaster_secret in the RSA key exchange and signs ServerKeyExchange in ECDHE_RSA; a
# client's signs CertificateVerify.
_PURPOSES = {"server": (EKU_SERVER_AUTH, "serverAuth"), "client": (EKU_CLIENT_AUTH, "clientAuth")}
_KEY_USES = {
    "RSA": (KU_KEY_ENCIPHERMENT, "keyEncipherment"),
    "ECDHE_RSA": (KU_DIGITAL_SIGNATURE, "digitalSignature"),
    "sign": (KU_DIGITAL_SIGNATURE, "digitalSignature"),
}


def _check_leaf(leaf, purpose, key_exchange):
    key = leaf.public_key
    # a client signs (RSA or ECDSA P-256); a server's key decrypts the premaster (RSA)
    if key is None or (purpose == "server" and not isinstance(key, RSAPublicKey)):
        raise TLSError(
            UNSUPPORTED_CERTIFICATE,
            "certificate %s has a %s key; only %s is supported"
            % (who(leaf), leaf.key_type, "RSA" if purpose == "server" else "RSA or ECDSA P-256"),
        )
    if isinstance(key, RSAPublicKey):
        _check_key_size(leaf)
    eku, eku_name = _PURPOSES[purpose]
    ku, ku_name = _KEY_USES[key_exchange if purpose == "server" else "sign"]
    if leaf.extended_key_usage is not None:
        if eku not in leaf.extended_key_usage and EKU_ANY not in leaf.extended_key_usage:
            raise TLSError(
                UNSUPPORTED_CERTIFICATE,
                "certificate %s is not for %s (extendedKeyUsage)" % (who(leaf), eku_name),
            )
    if leaf.key_usage is not None and not leaf.key_usage & ku:
        raise TLSError(
            UNSUPPORTED_CERTIFICATE,
            "certificate %s does not allow %s (keyUsage)" % (who(leaf), ku_name),
        )


def _check_key_size(cert):
    bits = cert.public_key.bits
    if bits < MIN_RSA_BITS:
        raise TLSError(
            BAD_CERTIFICATE, "RSA key of %d bits in %s is too small" % (bits, who(cert))
        )
    if bits > MAX_RSA_BITS:
        raise TLSError(
            UNSUPPORTED_CERTIFICATE, "RSA key of %d bits in %s is too large" % (bits, who(cert))
        )


def verify_chain(backend, chain, anchors, now, hostname=None, purpose="server", cache=None,
                 key_exchange="RSA", allow_cn=False):
    # chain: DER certificates as a TLS Certificate message carries them, leaf first;
    # cache: a SignatureCache kept across connections, or None; hostname: the name the
    # leaf must match, None for no name check (the client refuses to verify without
    # one); key_exchange: the suite's ("RSA" or "ECDHE_RSA"), which decides the keyUsage
    # a server's leaf needs; allow_cn: see match_hostname.
    # Returns the leaf Certificate, or raises TLSError with the alert to send.
    if purpose not in _PURPOSES:
        raise ValueError("purpose must be 'server' or 'client'")
    if key_exchange not in _KEY_USES:
        raise ValueError("key_exchange must be 'RSA' or 'ECDHE_RSA'")
    if not chain:
        raise TLSError(BAD_CERTIFICATE, "no certificate")
    if len(chain) > MAX_CERTIFICATE_CHAIN:
        raise TLSError(BAD_CERTIFICATE, "more than %d certificates" % MAX_CERTIFICATE_CHAIN)
    certs = [parse_certificate(der) if cache is None else cache.parse(der) for der in chain]
    leaf = certs[0]
    path, anchor = _build_path(backend, leaf, certs[1:], anchors, cache)
    full = path + [anchor]
    for cert in full:
        if cert.unknown_critical:
            raise TLSError(
                UNSUPPORTED_CERTIFICATE,
                "certificate %s has unsupported critical extension %s"
                % (who(cert), ", ".join(cert.unknown_critical)),
            )
    for cert in full:
        _check_validity(cert, now)
    for i in range(1, len(full)):
        _check_issuer(full[i], full[1:i], full[i] is anchor)
    for cert in full[1:]:
        if cert.name_constraints is not None:
            from . import nameconstraints

            nameconstraints.check(full, allow_cn and purpose == "server")
            break
    _check_leaf(leaf, purpose, key_exchange)
    for cert in path[1:]:
        # the anchor's key is left out: trusting it was the owner's choice
        if isinstance(cert.public_key, RSAPublicKey):
            _check_key_size(cert)
    if hostname is not None and not match_hostname(leaf, hostname, allow_cn):
        raise TLSError(
            CERTIFICATE_UNKNOWN, "certificate %s does not match host %r" % (who(leaf), hostname)
        )
    return leaf
