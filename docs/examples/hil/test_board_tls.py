"""A board's TLS client, tested from the host with the hsmtls pytest plugin.

Copy this directory, then:

    pip install 'hsmtls[pytest]'
    pytest                                            # an emulated board
    pytest --hsmtls-board esp32-devkitc --port /dev/ttyUSB0
    pytest --port rfc2217://farm.example:3001         # a board exported by ser2net / labgrid
    pytest --junitxml=report.xml                      # for CI

Every fixture comes from the plugin: no conftest.py needed.
"""


def test_handshake_to_token_backed_server(hsmtls_provisioned_board, hsmtls_serve):
    """The board (its key made on the board, its certificate from the token's CA) and a
    server whose key never leaves the token: mutual authentication."""
    server = hsmtls_serve(client_auth=True)
    r = hsmtls_provisioned_board.handshake(server, client_cert=True, send="ping\n")
    assert r["ok"], r["reason"]
    assert r["client_cert"] is True
    assert r["suite"] in ("TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256",
                          "TLS_RSA_WITH_AES_128_CBC_SHA")
    assert r["received"] == "ping\n"  # the server echoes


def test_renegotiation(hsmtls_provisioned_board, hsmtls_serve):
    r = hsmtls_provisioned_board.handshake(hsmtls_serve(client_auth=True), client_cert=True, renegotiate=True)
    assert r["ok"], r["reason"]
    assert r["renegotiations"] == 1
    assert r["secure_renegotiation"] is True


def test_openssl_as_the_peer(hsmtls_provisioned_board, hsmtls_openssl_server):
    r = hsmtls_provisioned_board.handshake(hsmtls_openssl_server(client_auth=True), client_cert=True)
    assert r["ok"], r["reason"]


def test_revoked_board_is_refused(hsmtls_provisioned_board, hsmtls_token, hsmtls_serve):
    """The CA revokes the board's certificate (a CRL signed in the token): the server
    refuses it, and the board's RESULT says why."""
    crl = hsmtls_token.revoke(hsmtls_provisioned_board.provisioned.serial)
    r = hsmtls_provisioned_board.handshake(hsmtls_serve(client_auth=True, crl=crl), client_cert=True)
    assert not r["ok"]
    assert "certificate_revoked" in r["reason"]


def test_the_board_holds_what_it_was_given(hsmtls_provisioned_board, hsmtls_token):
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding

    status = hsmtls_provisioned_board.status()
    ca_der = hsmtls_token.ca_cert.public_bytes(Encoding.DER)
    assert [a["sha256"] for a in status["anchors"]] == [hashlib.sha256(ca_der).hexdigest()]
    assert status["cert"]["key"] == "ec"  # --hsmtls-key-type rsa: "rsa"
