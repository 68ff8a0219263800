# A client and a server engine back to back, in memory, under MicroPython with the
# board's crypto backend: every board suite (GCM, CBC with and without
# encrypt_then_mac), client authentication, a renegotiation from each side and data
# both ways. The keys' private operations are answered here with textbook RSA (test
# only: the host answers them from a token or a file, the board with boardkey.py).
# Reads PKI files from the current directory; prints "ok <suite> <etm>" lines, "done".
from tlscore import pkcs1, suites, x509
from tlscore.backend_micropython import BACKEND
from tlscore.client import ClientConnection
from tlscore.config import TLSConfig
from tlscore.events import ApplicationData, HandshakeComplete, KeyOperationRequest
from tlscore.server import ServerConnection


def read(name):
    with open(name, "rb") as f:
        return f.read()


def key_numbers(name):
    k = {}
    for line in read(name).decode().split():
        a, b = line.split("=")
        k[a] = int(b, 16)
    return k


SERVER = key_numbers("server.key.txt")
CLIENT = key_numbers("client.key.txt")
anchors = [x509.parse_certificate(d) for d in x509.pem_to_der_list(read("ca.pem"))]
server_chain = x509.pem_to_der_list(read("server.pem"))
client_chain = x509.pem_to_der_list(read("client.pem"))
NOW = int(read("now.txt"))


def private(k, c):
    m1 = pow(c % k["p"], k["dp"], k["p"])
    m2 = pow(c % k["q"], k["dq"], k["q"])
    return m2 + ((k["qinv"] * (m1 - m2)) % k["p"]) * k["q"]


def answer(k, req):
    size = pkcs1.byte_length(k["n"])
    if req.kind == "decrypt":
        em = pkcs1.int_to_bytes(private(k, pkcs1.bytes_to_int(req.data)), size)
        good, message = pkcs1.depad_premaster(em, size)
        return good, message, BACKEND.random(46)
    em = pkcs1.encode_signature(BACKEND, req.hash_name, req.data, size)
    return pkcs1.int_to_bytes(private(k, pkcs1.bytes_to_int(em)), size)


def pump(conn, k, events, sink):
    for ev in events:
        sink.append(ev)
        if isinstance(ev, KeyOperationRequest):
            pump(conn, k, conn.key_operation_result(ev.op_id, answer(k, ev)), sink)


# --- the loopback (engine_fuzz.py reuses what is above this line) ---


def run(suite, etm):
    now = lambda: NOW  # noqa: E731
    cc = TLSConfig(cipher_suites=[suite], trust_anchors=anchors, server_name="localhost",
                   certificate_chain=client_chain, encrypt_then_mac=etm, now=now)
    sc = TLSConfig(cipher_suites=[suite], trust_anchors=anchors, certificate_chain=server_chain,
                   client_auth="require", now=now)
    c, s = ClientConnection(cc, BACKEND), ServerConnection(sc, BACKEND)
    cev, sev = [], []
    c.initiate()
    pump(c, CLIENT, c.next_events(), cev)

    def rounds():
        for _ in range(10):
            a = c.data_to_send()
            if a:
                pump(s, SERVER, s.receive_data(a), sev)
            b = s.data_to_send()
            if b:
                pump(c, CLIENT, c.receive_data(b), cev)
            if not a and not b:
                return

    rounds()
    assert c.established and s.established, (cev, sev)
    c.renegotiate()
    rounds()
    s.renegotiate()
    rounds()
    c.send_application_data(b"board" * 700)
    s.send_application_data(b"host")
    rounds()
    done = [e for e in cev if isinstance(e, HandshakeComplete)]
    assert len(done) == 3, cev
    assert len([e for e in sev if isinstance(e, HandshakeComplete)]) == 3, sev
    assert done[0].encrypt_then_mac == (etm and suite.cipher == "CBC")
    assert done[0].extended_master_secret and done[0].secure_renegotiation
    assert done[0].peer_subject.startswith("CN=localhost")
    got = b"".join(e.data for e in sev if isinstance(e, ApplicationData))
    assert got == b"board" * 700, len(got)
    assert [e.data for e in cev if isinstance(e, ApplicationData)] == [b"host"]
    print("ok", suite.name, etm)


for suite in suites.supported_by(BACKEND):
    for etm in ((True, False) if suite.cipher == "CBC" else (True,)):
        run(suite, etm)
print("done")
