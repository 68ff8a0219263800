# Runs under MicroPython (unix port), started by test_x509_micropython.py:
#   micropython x509_check.py <firmware/lib> <dir with the DER/PEM files> <now>
# It exercises tlscore.x509, .pathvalidation and .hostname on the interpreter the board
# runs, with a backend made of what the ESP32 firmware has (hashlib sha1/sha256,
# os.urandom), and prints one line per result for the test to compare with what CPython
# and `cryptography` say.

import sys

sys.path.insert(0, sys.argv[1])

import binascii  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402

from tlscore import hostname, pathvalidation, pkcs1, x509  # noqa: E402
from tlscore.errors import TLSError  # noqa: E402

DIR = sys.argv[2]
NOW = int(sys.argv[3])


class BoardBackend:
    hash_names = ("sha1", "sha256")

    def random(self, n):
        return os.urandom(n)

    def hash(self, name, data):
        return getattr(hashlib, name)(data).digest()


BACKEND = BoardBackend()


def load(name):
    with open(DIR + "/" + name, "rb") as f:
        return f.read()


def run(label, chain, anchors, host=None, purpose="server", **kw):
    try:
        leaf = pathvalidation.verify_chain(BACKEND, chain, anchors, NOW, hostname=host, purpose=purpose, **kw)
        print(label, "OK", leaf.common_name())
    except TLSError as e:
        print(label, "ALERT", e.alert, e.reason)


leaf_der = load("leaf.der")
inter_der = load("inter.der")
anchors = x509.load_anchors(load("root.pem"))
other = x509.load_anchors(load("other.pem"))

leaf = x509.parse_certificate(leaf_der)
print("subject", leaf.subject_str())
print("issuer", leaf.issuer_str())
print("serial", leaf.serial)
print("validity", leaf.not_before, leaf.not_after)
print("key", leaf.key_type, leaf.public_key.bits, leaf.public_key.e, leaf.public_key.n % 1000003)
print("san", ",".join(leaf.san_dns), ",".join([str(len(ip)) for ip in leaf.san_ip]))
print("ku", leaf.key_usage, "eku", ",".join(leaf.extended_key_usage))
print("bc", anchors[0].basic_constraints)
print("hash", leaf.signature_hash)

run("good", [leaf_der, inter_der], anchors, "localhost")
run("good_ip", [leaf_der, inter_der], anchors, "127.0.0.1")
run("expired", [load("expired.der"), inter_der], anchors, "localhost")
run("unknown_ca", [leaf_der, inter_der], other, "localhost")
run("wrong_host", [leaf_der, inter_der], anchors, "example.com")
run("sha384_missing", [load("sha384.der"), inter_der], anchors)
run("client", [load("client.der"), inter_der], anchors, None, "client")
nc_root = x509.load_anchors(load("nc_root.pem"))
run("nc_ok", [load("nc_ok.der")], nc_root, "www.example.com")
run("nc_out", [load("nc_out.der")], nc_root, "localhost")
run("nc_ip", [load("nc_ip.der")], nc_root)
run("dir_nc", [load("dir_leaf.der")], x509.load_anchors(load("dir_root.pem")), "localhost")
for name in ("sign_only", "enc_only"):
    for kx in ("RSA", "ECDHE_RSA"):
        label = name + ("_rsa" if kx == "RSA" else "_ecdhe")
        run(label, [load(name + ".der")], anchors, "localhost", key_exchange=kx)
run("cn_only", [load("cn_only.der")], anchors, "localhost")
run("cn_allowed", [load("cn_only.der")], anchors, "localhost", allow_cn=True)

# Host-name helpers and dates use str/int behaviour that differs between interpreters.
print(
    "ip",
    hostname.parse_ip("::ffff:10.1.2.3") == b"\x00" * 10 + b"\xff\xff\x0a\x01\x02\x03",
    hostname.parse_ip("1_0::1"),
)
wild = x509.Certificate(b"")
wild.san_dns = ["*.Example.com"]
wild.has_san = True
print(
    "wild", hostname.match_hostname(wild, "a.example.COM"), hostname.match_hostname(wild, "a.b.example.com")
)
print("time", x509.format_time(-1), x509.format_time(4102444800))

# RSAES-PKCS1-v1_5 with the leaf's key, for CPython to decrypt (the premaster_secret path).
c = pkcs1.encrypt(BACKEND, leaf.public_key.n, leaf.public_key.e, b"\x03\x03" + b"\x5a" * 46)
print("rsa_encrypt", binascii.hexlify(c).decode())

# Mutated copies of the leaf: only TLSError may come out, on this interpreter too.
seed = 12345
crashes = 0
parsed = 0
for i in range(int(sys.argv[4]) if len(sys.argv) > 4 else 200):
    seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
    b = bytearray(leaf_der)
    pos = seed % len(b)
    if i % 3 == 0:
        b = b[:pos]
    else:
        b[pos] ^= 1 << (seed >> 16) % 8
    try:
        c = x509.parse_certificate(bytes(b))
        c.subject_str()
        parsed += 1
        pathvalidation.verify_chain(BACKEND, [bytes(b), inter_der], anchors, NOW, hostname="localhost")
    except TLSError:
        pass
    except Exception as e:  # counted: this must never happen
        crashes += 1
        print("crash", i, repr(e))
print("fuzz parsed", parsed, "crashes", crashes)
