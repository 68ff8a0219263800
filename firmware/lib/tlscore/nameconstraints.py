# nameConstraints (RFC 5280 §4.2.1.10) of the CAs on a path pathvalidation.verify_chain built:
# every name of every certificate below a constraining CA must lie in one of its
# permitted subtrees of that name's form (if it has any of that form) and in none of its
# excluded ones, whether the extension is marked critical or not. dNSName and iPAddress
# constraints are checked; a CA that constrains any other form (directoryName,
# rfc822Name, URI, ...) is refused, because we could not tell whether a name below obeys
# it. The names checked are a certificate's subjectAltName dNSNames and iPAddresses and,
# on the leaf, the CN when it will be used as a host name (allow_cn, no subjectAltName).
# Loaded only when a CA on the path has the extension: most boards never import it.

from .constants import BAD_CERTIFICATE, UNSUPPORTED_CERTIFICATE
from .der import children, expect, int_value, malformed, string_value
from .errors import TLSError
from .x509 import who

_DNS = 0x82  # GeneralName dNSName [2] IA5String
_IP = 0x87  # GeneralName iPAddress [7] OCTET STRING
_IA5_STRING = 0x16  # (der's is a MicroPython const: not importable)
_FORMS = {
    0: "otherName", 1: "rfc822Name", 2: "dNSName", 3: "x400Address", 4: "directoryName",
    5: "ediPartyName", 6: "uniformResourceIdentifier", 7: "iPAddress", 8: "registeredID",
}


def parse(cert):
    # -> (permitted, excluded), each a list of (_DNS, base) or (_IP, address, mask)
    data = cert.der
    start, end = cert.name_constraints
    s, e = expect(data, start, end, 0x30, "NameConstraints")
    if e != end:
        raise malformed("trailing data in nameConstraints")
    out = ([], [])
    for t, ts, te in children(data, s, e):
        # [0] permittedSubtrees, [1] excludedSubtrees, each a SEQUENCE OF GeneralSubtree
        if t != 0xA0 and t != 0xA1:
            raise malformed("bad NameConstraints")
        trees = out[t - 0xA0]
        for st, ss, se in children(data, ts, te):
            # GeneralSubtree ::= SEQUENCE { base GeneralName, minimum [0] DEFAULT 0, maximum [1] OPTIONAL }
            items = children(data, ss, se) if st == 0x30 else ()
            if not items:
                raise malformed("bad GeneralSubtree")
            bt, bs, be = items[0]
            for qt, qs, qe in items[1:]:
                if qt != 0x80 or int_value(data, qs, qe, True) != 0:
                    raise TLSError(
                        UNSUPPORTED_CERTIFICATE,
                        "certificate %s has a nameConstraints minimum or maximum (RFC 5280 forbids them)"
                        % who(cert),
                    )
            if bt == _DNS:
                base = string_value(data, _IA5_STRING, bs, be).lower()
                trees.append((_DNS, base[:-1] if base.endswith(".") else base))
            elif bt == _IP:
                half = (be - bs) // 2
                if (half != 4 and half != 16) or be - bs != 2 * half:
                    raise malformed("bad iPAddress in nameConstraints")
                trees.append((_IP, data[bs : bs + half], data[bs + half : be]))
            else:
                raise TLSError(
                    UNSUPPORTED_CERTIFICATE,
                    "certificate %s constrains %s names (nameConstraints), which we cannot check"
                    % (who(cert), _FORMS.get(bt & 0x1F, "unknown")),
                )
    return out


def _dns_within(name, base, excluded):
    # Whether the host name `name` lies in the subtree `base`: base itself and any name
    # made by adding labels on its left ("example.com" holds "a.example.com", not
    # "badexample.com"); a base with a leading dot holds only the names below it; an
    # empty base holds every name. For an excluded subtree a wildcard "*.S" counts as
    # inside when any name it matches is: a base one label below S.
    if not base:
        return True
    if base[0] == ".":
        inside = name.endswith(base)
    else:
        inside = name == base or name.endswith("." + base)
    if inside or not excluded or not name.startswith("*.") or base[0] == ".":
        return inside
    dot = base.find(".")
    return dot > 0 and base[dot + 1 :] == name[2:]


def _ip_within(ip, address, mask):
    if len(ip) != len(address):
        return False
    for i in range(len(ip)):
        if (ip[i] ^ address[i]) & mask[i]:
            return False
    return True


def _within(form, value, tree, excluded):
    if form == _DNS:
        return _dns_within(value, tree[1], excluded)
    return _ip_within(value, tree[1], tree[2])


def _show(form, value):
    if form == _DNS:
        return value
    if len(value) == 4:
        return ".".join([str(b) for b in value])
    return ":".join(["%x" % (value[i] << 8 | value[i + 1]) for i in range(0, 16, 2)])


def _names(cert, is_leaf, allow_cn):
    names = [(_DNS, n.lower()[:-1] if n.endswith(".") else n.lower()) for n in cert.san_dns]
    names += [(_IP, ip) for ip in cert.san_ip]
    if is_leaf and allow_cn and not cert.has_san:
        cn = cert.common_name()
        if cn:
            names.append((_DNS, cn.lower()))
    return names


def check(full, allow_cn):
    # full: the path, leaf first, anchor last. Constraints of full[i] bind full[:i],
    # except self-issued CAs other than the leaf (RFC 5280 §6.1.3 b, c).
    for i in range(1, len(full)):
        ca = full[i]
        if ca.name_constraints is None:
            continue
        permitted, excluded = parse(ca)
        for j in range(i):
            cert = full[j]
            if j and cert.is_self_issued():
                continue
            for form, value in _names(cert, j == 0, allow_cn):
                trees = [t for t in permitted if t[0] == form]
                if trees and not [t for t in trees if _within(form, value, t, False)]:
                    raise TLSError(
                        BAD_CERTIFICATE,
                        "name %s of certificate %s is outside the names CA %s may certify (nameConstraints)"
                        % (_show(form, value), who(cert), who(ca)),
                    )
                for t in excluded:
                    if t[0] == form and _within(form, value, t, True):
                        raise TLSError(
                            BAD_CERTIFICATE,
                            "name %s of certificate %s is excluded by CA %s (nameConstraints)"
                            % (_show(form, value), who(cert), who(ca)),
                        )
