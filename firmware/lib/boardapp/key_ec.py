# The board's own ECDSA P-256 key, for CertificateVerify (key.load() returns one
# for a key file with a `type=ec` line: `type`, `curve`, then d, x, y in hex). The
# message-independent half of a signature (tlscore.p256.presign: the nonce, R = k*G,
# k^-1) is made ahead, a slice per call of prepare_step() while the board is idle or a
# session waits for its server, and
# the signature itself is then three multiplications. A prepared pair is dropped as it
# is taken, so it signs once; with none ready, sign() makes one on the spot. Nonces
# are HMAC_DRBG(d, fresh os.urandom, this boot's number, a count): the boot number
# comes from a small counter file written once per boot, so even an RNG that repeats
# itself after every reset (an ESP32 with its radio off) does not repeat a nonce; a
# counter the flash will not take stops the signature (key.next_count).
# The prepared pair lives in one buffer allocated with the key: a long-lived object
# made during every idle period would fragment the heap, and a buffer, unlike ints,
# can be wiped once used.
# No signature is verified here before it leaves: that is two scalar multiplications,
# about twice the idle-time preparation and ~200x the online step; p256 checks R is
# on the curve, k * k^-1 = 1 and s * k = z + r * d instead (faults in the arithmetic).

import os

from tlscore import p256

ECDSA_SCHEME = "ecdsa_secp256r1_sha256"


class ECBoardKey:
    kind = "ec"

    def __init__(self, d, x, y, boots_path=None):
        if not 0 < d < p256.N or not p256.on_curve(x, y):
            raise ValueError("not a P-256 key")
        self.d, self.x, self.y = d, x, y
        self._pair = bytearray(96)  # k, k^-1, r (32 bytes each), for one signature
        self._ready = False
        self._steps = None  # p256.presign_steps in progress
        self._boots_path = boots_path
        self._boot = None
        self._count = 0
        self.prepared_used = 0

    @classmethod
    def from_fields(cls, vals, boots_path=None):
        d = int(vals["d"], 16)
        if "x" in vals and "y" in vals:
            x, y = int(vals["x"], 16), int(vals["y"], 16)
        else:
            x, y = p256.mul_base(d, os.urandom(32))
        return cls(d, x, y, boots_path)

    def text(self):
        return "type=ec\ncurve=secp256r1\nd=%x\nx=%x\ny=%x\n" % (self.d, self.x, self.y)

    def can_sign(self, scheme):
        return scheme == ECDSA_SCHEME

    def matches(self, public_key):
        # the certificate's key (x509.ECPublicKey) is this key's
        return getattr(public_key, "point", None) == p256.encode_point((self.x, self.y))

    @property
    def ready(self):
        return self._ready

    def _boot_number(self):
        # this boot's number: one more than the counter file says, written back once
        # (key.next_count raises, and nothing is signed, if the flash will not
        # take it); no file named (a host's test): 0
        if self._boot is None:
            if self._boots_path:
                from boardapp.key import next_count

                self._boot = next_count(self._boots_path)
            else:
                self._boot = 0
        return self._boot

    def prepare_step(self, backend):
        # one slice of the next nonce pair; True once one is ready
        if self._ready:
            return True
        if self._steps is None:
            self._count += 1
            extra = ("%d/%d" % (self._boot_number(), self._count)).encode()
            self._steps = p256.presign_steps(backend, self.d, extra)
        try:
            r = next(self._steps)
        except BaseException:
            self._steps = None
            raise
        if r is None:
            return False
        self._steps = None
        buf = self._pair
        for i in range(3):
            buf[32 * i : 32 * i + 32] = r[i].to_bytes(32, "big")
        self._ready = True
        return True

    def prepare(self, backend):
        while not self.prepare_step(backend):
            pass

    def sign(self, backend, hash_name, message):
        return self.sign_digest(backend, hash_name, backend.hash(hash_name, message))

    def sign_digest(self, backend, hash_name, digest):
        if hash_name != "sha256" or len(digest) != 32:
            raise ValueError("P-256 signs with SHA-256 only here")
        if self._ready:
            self.prepared_used += 1
        if not self._ready:
            import gc

            self.prepare(backend)  # finishes a half-made pair, or makes one now
            # that left the heap full of dead big ints; what the handshake allocates
            # next (and keeps) should go into low holes, not be stranded amid them
            gc.collect()
        buf = self._pair
        pair = [int.from_bytes(bytes(buf[i : i + 32]), "big") for i in (0, 32, 64)]
        # taken: wiped and marked used before anything else can fail, so it never
        # signs twice
        self._ready = False
        for i in range(96):
            buf[i] = 0
        r, s = p256.sign_digest(self.d, digest, pair)
        return p256.der_signature(r, s)
