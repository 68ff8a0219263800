# The TLS 1.2 key schedule (RFC 5246 §5, §6.3, §7.4.9; RFC 7627 §4): the PRF, the
# master secret (classic or extended), the key block and Finished verify_data.

MASTER_SECRET_LEN = 48
VERIFY_DATA_LEN = 12


def p_hash(backend, hash_name, secret, seed, length):
    # P_hash(secret, seed) = HMAC(secret, A(1) + seed) + HMAC(secret, A(2) + seed) + ...
    out = bytearray()
    a = seed
    while len(out) < length:
        a = backend.hmac(hash_name, secret, a)
        out += backend.hmac(hash_name, secret, a + seed)
    return bytes(out[:length])


def prf(backend, hash_name, secret, label, seed, length):
    return p_hash(backend, hash_name, secret, label + seed, length)


def master_secret(backend, hash_name, pre_master_secret, client_random, server_random):
    return prf(
        backend,
        hash_name,
        pre_master_secret,
        b"master secret",
        client_random + server_random,
        MASTER_SECRET_LEN,
    )


def extended_master_secret(backend, hash_name, pre_master_secret, session_hash):
    return prf(
        backend, hash_name, pre_master_secret, b"extended master secret", session_hash, 48
    )


def key_block(backend, hash_name, master, server_random, client_random, length):
    return prf(backend, hash_name, master, b"key expansion", server_random + client_random, length)


def verify_data(backend, hash_name, master, is_client, handshake_hash):
    label = b"client finished" if is_client else b"server finished"
    return prf(backend, hash_name, master, label, handshake_hash, VERIFY_DATA_LEN)


def split_key_block(suite, block):
    # -> (client_mac, server_mac, client_key, server_key, client_iv, server_iv)
    m, k, iv = suite.mac_len, suite.key_len, suite.fixed_iv_len
    out = []
    pos = 0
    for n in (m, m, k, k, iv, iv):
        out.append(block[pos : pos + n])
        pos += n
    return out


def key_block_length(suite):
    return 2 * (suite.mac_len + suite.key_len + suite.fixed_iv_len)
