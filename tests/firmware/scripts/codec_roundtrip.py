# Round-trips every handshake message codec; runs unchanged under CPython and
# MicroPython (the firmware tests run it on the unix port). Prints one line per
# message, "ok <name> <body length>", and "done" at the end; a failure raises.
from tlscore import constants as C
from tlscore.errors import TLSError
from tlscore.messages import (
    MESSAGE_CLASSES,
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    ClientKeyExchange,
    Finished,
    HelloRequest,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
    ec_point_formats_extension,
    frame,
    parse_ec_point_formats,
    parse_renegotiation_info,
    parse_signature_algorithms,
    parse_supported_groups,
    renegotiation_info_extension,
    server_name_extension,
    signature_algorithms_extension,
    supported_groups_extension,
)
from tlscore.server import parse_server_name

R = bytes(range(32))
samples = [
    HelloRequest(),
    ClientHello(
        0x0303, R, b"", [0x009C, 0x003C, 0x00FF], [0],
        [server_name_extension("localhost"), signature_algorithms_extension([0x0401, 0x0501]),
         (C.EXT_EXTENDED_MASTER_SECRET, b""), renegotiation_info_extension(b"")],
    ),
    ClientHello(0x0303, R, b"\x01" * 32, [0x002F], [0]),
    ServerHello(0x0303, R, b"", 0x009C, 0, [(C.EXT_EXTENDED_MASTER_SECRET, b""),
                                            renegotiation_info_extension(b"x" * 24)]),
    Certificate([b"\x30\x03\x02\x01\x01", b"\x30\x00" * 100]),
    Certificate([]),
    CertificateRequest([C.RSA_SIGN], [0x0401, 0x0501], [b"\x30\x0bname-one", b"\x30\x01z"]),
    ServerHelloDone(),
    ClientKeyExchange.rsa(bytes(256)),
    ClientKeyExchange.ecdhe(bytes(range(32))),
    ServerKeyExchange(C.X25519, bytes(range(32)), 0x0804, b"\xBB" * 256),
    CertificateVerify(0x0401, b"\xAA" * 256),
    Finished(b"\x55" * 12),
]


def same(a, b):
    return a.__dict__ == b.__dict__


for msg in samples:
    body = msg.write()
    raw = frame(msg.msg_type, body)
    assert raw[0] == msg.msg_type
    cls = MESSAGE_CLASSES[msg.msg_type]
    back = cls.parse(memoryview(raw)[4:])
    assert back.write() == body, type(msg).__name__
    assert same(back, msg), type(msg).__name__
    # every strict prefix of a non-empty body is a decode_error, never another exception
    for cut in range(len(body)):
        try:
            parsed = cls.parse(body[:cut])
            if msg.msg_type == C.CLIENT_KEY_EXCHANGE:  # parsed lazily, by key exchange
                (parsed.ecdh_yc if len(body) < 100 else parsed.encrypted_pre_master_secret)()
        except TLSError as e:
            assert e.alert == C.DECODE_ERROR, (type(msg).__name__, cut, e.alert)
        else:
            # optional trailing parts (hello extensions) may be absent
            assert msg.msg_type in (C.CLIENT_HELLO, C.SERVER_HELLO), (type(msg).__name__, cut)
    print("ok", C.HANDSHAKE_NAMES[msg.msg_type], len(body))

assert parse_server_name(server_name_extension("board.local")[1]) == "board.local"
assert parse_signature_algorithms(signature_algorithms_extension([0x0401])[1]) == [0x0401]
assert parse_supported_groups(supported_groups_extension([29, 23])[1]) == [29, 23]
assert parse_ec_point_formats(ec_point_formats_extension()[1]) == [0]
assert ClientKeyExchange.rsa(b"abc").encrypted_pre_master_secret() == b"abc"
assert ClientKeyExchange.ecdhe(b"xyz").ecdh_yc() == b"xyz"
assert parse_renegotiation_info(renegotiation_info_extension(b"abc")[1]) == b"abc"
try:
    ClientHello.parse(samples[1].write() + b"\x00")
    raise AssertionError("trailing byte accepted")
except TLSError as e:
    assert e.alert == C.DECODE_ERROR
print("done")
