# What the board holds, for `hsmtls board status` (STATS {"identity": true}): its trust
# anchors, its own certificate (subject, issuer, serial, expiry, key type; the key
# itself stays where it is) and its autorun. Loaded only when asked: a board that is
# never asked pays no heap for it. A file missing or bad is said, not raised.

from tlscore import x509


def identity(board, out):
    try:
        fps = board.anchor_fingerprints()
        out["anchors"] = [{"sha256": fp, "subject": a.subject_str(), "not_after": a.not_after}
                          for a, fp in zip(board.anchors(), fps)]
    except Exception as e:
        out["anchors_error"] = str(e)
    try:
        chain = board.client_chain()
        if not chain:
            raise ValueError("client.pem holds no certificate")
        cert = x509.parse_certificate(chain[0])
        out["cert"] = {"subject": cert.subject_str(), "issuer": cert.issuer_str(), "serial": "%x" % cert.serial,
                       "not_after": cert.not_after, "key": cert.key_type}
    except Exception as e:
        out["cert_error"] = str(e)
    opts = board.autorun
    if opts is None:
        from boardapp import autorun

        try:
            opts = autorun.read(board)  # (kept for the next boot after a once-a-boot run)
        except (OSError, ValueError):
            pass
    out["autorun"] = opts
