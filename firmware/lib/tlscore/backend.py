# The crypto backend interface: the only primitives the engine needs from its
# interpreter. The CPython backend (hsmtls.backend, over `cryptography`) and the
# MicroPython backend (hashlib/cryptolib) both implement it. RSA public-key
# operations, PKCS#1 padding, X.509 and the TLS PRF are engine code on top of it.
#
#   random(n) -> n random bytes
#   hash(name, data) -> digest            name in "sha1", "sha256", "sha384", "sha512"
#   new_hash(name) -> a running hash: update(data), digest() (and copy(), if it can)
#   hmac(name, key, data) -> mac
#   hash_names -> tuple of the names this backend supports
#   aes_gcm(key) -> object with
#       seal(nonce12, plaintext, aad) -> ciphertext || tag16
#       open(nonce12, ciphertext_and_tag, aad) -> plaintext, or None if the tag is wrong
#       open_in_place(nonce12, buf, aad) -> optional: as open, decrypting in the
#           writable buf itself (the record layer's receive buffer); a view of the plaintext
#   aes_cbc(key) -> object with (no padding; whole blocks only)
#       encrypt(iv16, data) -> ciphertext
#       decrypt(iv16, data) -> plaintext
#   cbc_padding_bad(p, pad, mac_len) -> optional: record._padding_bad's 1 or 0, at a cost
#       that follows len(p) alone (the Lucky13 countermeasure); the engine's loop otherwise
#   modexp(x, e, n) -> optional: x^e mod n for a public exponent e (RSA encryption and
#       signature verification); the engine uses pow() where a backend has none
#   groups -> tuple of NamedGroup codes it can do ECDHE in (empty: no ECDHE suites)
#   ecdh_generate(group) -> (private, public point bytes as sent on the wire)
#   ecdh_shared(group, private, peer_public) -> shared secret, or None if the
#       peer's point is invalid (the engine answers illegal_parameter)
#   ecdsa_groups -> tuple of NamedGroup codes it verifies ECDSA on (empty: a server
#       on it does not take ECDSA client certificates; the board's backend has none)
#   ecdsa_verify(group, public_point, hash_name, message, signature) -> bool
#       public_point 04||X||Y, signature a DER ECDSA-Sig-Value (RFC 3279 §2.2.3);
#       False for any malformed or wrong signature


class Backend:
    hash_names = ()
    groups = ()
    ecdsa_groups = ()

    def random(self, n):
        raise NotImplementedError

    def hash(self, name, data):
        raise NotImplementedError

    def new_hash(self, name):
        raise NotImplementedError

    def hmac(self, name, key, data):
        raise NotImplementedError

    def aes_gcm(self, key):
        raise NotImplementedError

    def aes_cbc(self, key):
        raise NotImplementedError

    def ecdh_generate(self, group):
        raise NotImplementedError

    def ecdh_shared(self, group, private, peer_public):
        raise NotImplementedError

    def ecdsa_verify(self, group, public_point, hash_name, message, signature):
        raise NotImplementedError
