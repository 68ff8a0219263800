# Whether a certificate names the host a client meant to reach (RFC 6125 §6.4): DNS
# names in subjectAltName with the one wildcard form RFC 6125 allows, IP literals (v4,
# v6, v4-mapped) against iPAddress entries only, and the CN when a caller asks for the
# old practice. parse_ip reads an IP literal into the octets iPAddress holds; it refuses
# what int() would let through ("+1", "1_0"), because a host name is text from outside.


def _number(text, base, max_len):
    # int() would also accept "+1", " 1" and "1_0"; an address part is plain digits
    if not 1 <= len(text) <= max_len:
        return None
    v = 0
    for c in text.lower():
        d = "0123456789abcdef".find(c)
        if d < 0 or d >= base:
            return None
        v = v * base + d
    return v


def _parse_ipv4(text):
    parts = text.split(".")
    if len(parts) != 4:
        return None
    out = bytearray()
    for p in parts:
        v = _number(p, 10, 3)
        if v is None or v > 255:
            return None
        out.append(v)
    return bytes(out)


def _parse_ipv6(text):
    if ":" not in text:
        return None
    if "%" in text:  # zone index never appears in a certificate
        text = text.split("%", 1)[0]
    tail = b""
    last_colon = text.rfind(":")
    if "." in text[last_colon + 1 :]:
        tail = _parse_ipv4(text[last_colon + 1 :])
        if tail is None:
            return None
        text = text[: last_colon + 1] + "0:0"
    halves = text.split("::")
    if len(halves) > 2:
        return None
    groups = []
    for half in halves:
        words = []
        if half:
            for w in half.split(":"):
                v = _number(w, 16, 4)
                if v is None:
                    return None
                words.append(v)
        groups.append(words)
    if len(halves) == 2:
        missing = 8 - len(groups[0]) - len(groups[1])
        if missing < 1:
            return None
        words = groups[0] + [0] * missing + groups[1]
    else:
        words = groups[0]
    if len(words) != 8:
        return None
    out = bytearray()
    for w in words:
        out.append(w >> 8)
        out.append(w & 0xFF)
    if tail:
        out[12:16] = tail
    return bytes(out)


def parse_ip(text):
    # 4 or 16 octets as iPAddress holds them, or None if text is not an IP literal
    ip = _parse_ipv4(text)
    if ip is None:
        ip = _parse_ipv6(text)
    return ip


def _dns_match(pattern, host):
    pattern = pattern.lower()
    if pattern.endswith("."):
        pattern = pattern[:-1]
    if not pattern:
        return False
    if "*" not in pattern:
        return pattern == host
    # Only a whole left-most label may be "*", and it must leave at least two labels,
    # so "*.com" never matches; "*" stands for exactly one non-empty label.
    if not pattern.startswith("*.") or "*" in pattern[1:]:
        return False
    suffix = pattern[2:]
    if "." not in suffix:
        return False
    dot = host.find(".")
    return dot > 0 and host[dot + 1 :] == suffix


def match_hostname(cert, hostname, allow_cn=False):
    # allow_cn: a certificate without subjectAltName may name its host in its CN (an
    # old practice RFC 6125 §6.4.4 leaves to the client; off unless asked for)
    if not hostname:
        return False
    host = hostname.lower()
    if host.endswith("."):
        host = host[:-1]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    ip = parse_ip(host)
    if ip is not None:
        # IP literals match iPAddress entries only, never a DNS name or the CN.
        for candidate in cert.san_ip:
            if candidate == ip:
                return True
        return False
    for pattern in cert.san_dns:
        if _dns_match(pattern, host):
            return True
    if cert.has_san or not allow_cn:
        return False
    cn = cert.common_name()
    return cn is not None and _dns_match(cn, host)
