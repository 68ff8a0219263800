# Wire constants of TLS 1.2 (RFC 5246) and the extensions tlscore speaks, named as the
# RFCs name them. Plain integers and dicts only: this module is imported on the board.

TLS1_2 = 0x0303
TLS1_1 = 0x0302
TLS1_0 = 0x0301
SSL3_0 = 0x0300

# ContentType (RFC 5246 §6.2.1)
CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23

# HandshakeType (RFC 5246 §7.4)
HELLO_REQUEST = 0
CLIENT_HELLO = 1
SERVER_HELLO = 2
CERTIFICATE = 11
SERVER_KEY_EXCHANGE = 12
CERTIFICATE_REQUEST = 13
SERVER_HELLO_DONE = 14
CERTIFICATE_VERIFY = 15
CLIENT_KEY_EXCHANGE = 16
FINISHED = 20
NEW_SESSION_TICKET = 4  # RFC 5077 §3.3

HANDSHAKE_NAMES = {
    HELLO_REQUEST: "HelloRequest",
    CLIENT_HELLO: "ClientHello",
    SERVER_HELLO: "ServerHello",
    CERTIFICATE: "Certificate",
    SERVER_KEY_EXCHANGE: "ServerKeyExchange",
    CERTIFICATE_REQUEST: "CertificateRequest",
    SERVER_HELLO_DONE: "ServerHelloDone",
    CERTIFICATE_VERIFY: "CertificateVerify",
    CLIENT_KEY_EXCHANGE: "ClientKeyExchange",
    FINISHED: "Finished",
    NEW_SESSION_TICKET: "NewSessionTicket",
}

# AlertLevel / AlertDescription (RFC 5246 §7.2, RFC 5746, RFC 6066)
WARNING = 1
FATAL = 2

CLOSE_NOTIFY = 0
UNEXPECTED_MESSAGE = 10
BAD_RECORD_MAC = 20
RECORD_OVERFLOW = 22
HANDSHAKE_FAILURE = 40
BAD_CERTIFICATE = 42
UNSUPPORTED_CERTIFICATE = 43
CERTIFICATE_REVOKED = 44
CERTIFICATE_EXPIRED = 45
CERTIFICATE_UNKNOWN = 46
ILLEGAL_PARAMETER = 47
UNKNOWN_CA = 48
ACCESS_DENIED = 49
DECODE_ERROR = 50
DECRYPT_ERROR = 51
PROTOCOL_VERSION = 70
INSUFFICIENT_SECURITY = 71
INTERNAL_ERROR = 80
USER_CANCELED = 90
NO_RENEGOTIATION = 100
UNSUPPORTED_EXTENSION = 110
UNRECOGNIZED_NAME = 112

ALERT_NAMES = {
    CLOSE_NOTIFY: "close_notify",
    UNEXPECTED_MESSAGE: "unexpected_message",
    BAD_RECORD_MAC: "bad_record_mac",
    RECORD_OVERFLOW: "record_overflow",
    HANDSHAKE_FAILURE: "handshake_failure",
    BAD_CERTIFICATE: "bad_certificate",
    UNSUPPORTED_CERTIFICATE: "unsupported_certificate",
    CERTIFICATE_REVOKED: "certificate_revoked",
    CERTIFICATE_EXPIRED: "certificate_expired",
    CERTIFICATE_UNKNOWN: "certificate_unknown",
    ILLEGAL_PARAMETER: "illegal_parameter",
    UNKNOWN_CA: "unknown_ca",
    ACCESS_DENIED: "access_denied",
    DECODE_ERROR: "decode_error",
    DECRYPT_ERROR: "decrypt_error",
    PROTOCOL_VERSION: "protocol_version",
    INSUFFICIENT_SECURITY: "insufficient_security",
    INTERNAL_ERROR: "internal_error",
    USER_CANCELED: "user_canceled",
    NO_RENEGOTIATION: "no_renegotiation",
    UNSUPPORTED_EXTENSION: "unsupported_extension",
    UNRECOGNIZED_NAME: "unrecognized_name",
}


def alert_name(description):
    return ALERT_NAMES.get(description, "alert(%d)" % description)


# ExtensionType
EXT_SERVER_NAME = 0
EXT_MAX_FRAGMENT_LENGTH = 1
EXT_SUPPORTED_GROUPS = 10
EXT_EC_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ENCRYPT_THEN_MAC = 22
EXT_EXTENDED_MASTER_SECRET = 23
EXT_SESSION_TICKET = 35
EXT_SUPPORTED_VERSIONS = 43  # RFC 8446 §4.2.1: a TLS 1.3 client lists what it speaks
EXT_RENEGOTIATION_INFO = 0xFF01

EXTENSION_NAMES = {
    EXT_SERVER_NAME: "server_name",
    EXT_MAX_FRAGMENT_LENGTH: "max_fragment_length",
    EXT_SUPPORTED_GROUPS: "supported_groups",
    EXT_EC_POINT_FORMATS: "ec_point_formats",
    EXT_SIGNATURE_ALGORITHMS: "signature_algorithms",
    EXT_ENCRYPT_THEN_MAC: "encrypt_then_mac",
    EXT_EXTENDED_MASTER_SECRET: "extended_master_secret",
    EXT_SESSION_TICKET: "session_ticket",
    EXT_SUPPORTED_VERSIONS: "supported_versions",
    EXT_RENEGOTIATION_INFO: "renegotiation_info",
}

# Signalling cipher suite value for secure renegotiation (RFC 5746 §3.3)
TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF

# SignatureScheme / SignatureAndHashAlgorithm (RFC 5246 §7.4.1.4.1, RFC 8446 names)
RSA_PKCS1_SHA1 = 0x0201
RSA_PKCS1_SHA256 = 0x0401
RSA_PKCS1_SHA384 = 0x0501
RSA_PKCS1_SHA512 = 0x0601
RSA_PSS_RSAE_SHA256 = 0x0804
RSA_PSS_RSAE_SHA384 = 0x0805
RSA_PSS_RSAE_SHA512 = 0x0806
ECDSA_SECP256R1_SHA256 = 0x0403

SIGNATURE_SCHEMES = {
    # code: (name, hash name)
    RSA_PKCS1_SHA256: ("rsa_pkcs1_sha256", "sha256"),
    RSA_PKCS1_SHA384: ("rsa_pkcs1_sha384", "sha384"),
    RSA_PKCS1_SHA512: ("rsa_pkcs1_sha512", "sha512"),
    RSA_PKCS1_SHA1: ("rsa_pkcs1_sha1", "sha1"),
    RSA_PSS_RSAE_SHA256: ("rsa_pss_rsae_sha256", "sha256"),
    RSA_PSS_RSAE_SHA384: ("rsa_pss_rsae_sha384", "sha384"),
    RSA_PSS_RSAE_SHA512: ("rsa_pss_rsae_sha512", "sha512"),
    ECDSA_SECP256R1_SHA256: ("ecdsa_secp256r1_sha256", "sha256"),
}

# NamedGroup (RFC 8422 §5.1.1, RFC 7748) and ECPointFormat / ECCurveType
SECP256R1 = 23
X25519 = 29
GROUP_NAMES = {SECP256R1: "secp256r1", X25519: "x25519"}
POINT_FORMAT_UNCOMPRESSED = 0
NAMED_CURVE = 3

# ClientCertificateType (RFC 5246 §7.4.4, RFC 8422 §5.5)
RSA_SIGN = 1
ECDSA_SIGN = 64

# Limits. A handshake message bigger than this is refused before it is buffered.
MAX_PLAINTEXT = 1 << 14
MAX_CIPHERTEXT = (1 << 14) + 2048
MAX_HANDSHAKE_MESSAGE = 1 << 16
# The longest ClientHello body its vectors allow (RFC 5246 §7.4.1.2): version, random,
# session_id<0..32>, cipher_suites<2..2^16-2>, compression_methods<1..2^8-1>,
# extensions<0..2^16-1>. A server admits this much whatever its other limits.
MAX_CLIENT_HELLO = 2 + 32 + 1 + 32 + 2 + 65534 + 1 + 255 + 2 + 65535
MAX_CERTIFICATE_CHAIN = 10
