# Published known-answer vectors for the TLS 1.2 key schedule (RFC 5246 §5, §8.1, §6.3;
# RFC 7627 §4). Every value below is copied from the source named beside it; none was
# produced by tlscore. Hex strings, as in the sources. Plain data (no imports) so the
# MicroPython tests can ship the same values into the interpreter.
#
# Sources:
#   [IETF]    The P_SHA256 / P_SHA384 "test label" vectors posted to the IETF TLS list:
#             https://www.ietf.org/mail-archive/web/tls/current/msg03416.html
#             (new archive: https://mailarchive.ietf.org/arch/msg/tls/fzVCzk-z3FShgGJ6DOXqM1ydxms/;
#             the SHA-256 one is also in tompetersen/bachelor-thesis
#             Source/jProtocol/src/test/tls/PseudoRandomFunction.java, citing that URL).
#   [MBEDTLS] Mbed-TLS/mbedtls tests/suites/test_suite_ssl.data, cases
#             "SSL TLS_PRF MBEDTLS_SSL_TLS_PRF_SHA256" and "..._SHA384"
#             (ssl_tls_prf: secret, random, label "test tls_prf label", first 16 bytes).
#   [OPENSSL] openssl/openssl test/recipes/30-test_evp_data/evpkdf_tls12_prf.txt,
#             "TLS12 PRF tests (from NIST test vectors)": the NIST CAVP SP 800-135 TLS 1.2
#             KDF master secret and key block; and its "extended master secret" entry
#             with an 11-byte secret (FIPS indicator test, SHA-256, key-check:0).
#   [ACVP]    usnistgov/ACVP-Server gen-val/json-files/kdf-components-tls-1.0/
#             internalProjection.json (NIST ACVP kdf-components/tls sample set; tcId 37
#             of the SHA2-256 v1.2 group, tcId 41 of tgId 3, SHA2-384 v1.2).
#   [ACVP-EMS] usnistgov/ACVP-Server gen-val/json-files/TLS-v1.2-KDF-RFC7627/
#             internalProjection.json (NIST ACVP TLS-v1.2 KDF RFC7627 sample set; tcId 1
#             and 2 of tgId 1, SHA2-256; tcId 37 of the SHA2-384 group). keyBlockLength
#             1024 bits.
#
# In the NIST formats the master secret uses clientHelloRandom + serverHelloRandom and
# the key block uses serverRandom + clientRandom (distinct values in the test data).

# PRF(secret, label, seed)[:len(output)]
PRF = [
    {
        "name": "IETF P_SHA256 test label",
        "source": "IETF",
        "hash": "sha256",
        "secret": "9bbe436ba940f017b17652849a71db35",
        "label": "test label",
        "seed": "a0ba9f936cda311827a6f796ffd5198c",
        "output": "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
        "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
        "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
        "87347b66",
    },
    {
        "name": "IETF P_SHA384 test label",
        "source": "IETF",
        "hash": "sha384",
        "secret": "b80b733d6ceefcdc71566ea48e5567df",
        "label": "test label",
        "seed": "cd665cf6a8447dd6ff8b27555edb7465",
        "output": "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd"
        "e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd"
        "8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425"
        "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6"
        "91c8f3a26854308d5eaa3be85e0990703d73e56f",
    },
    {
        "name": "mbedTLS ssl_tls_prf SHA256",
        "source": "MBEDTLS",
        "hash": "sha256",
        "secret": "1234567890abcdef" * 6,
        "label": "test tls_prf label",
        "seed": "1234567890abcdef" * 8,
        "output": "7f9998393198a02c8d731ccc2ef90b2c",
    },
    {
        "name": "mbedTLS ssl_tls_prf SHA384",
        "source": "MBEDTLS",
        "hash": "sha384",
        "secret": "1234567890abcdef" * 6,
        "label": "test tls_prf label",
        "seed": "1234567890abcdef" * 8,
        "output": "a4206a36eef93f496611c2b7806625c3",
    },
]

# master_secret = PRF(pre_master_secret, "master secret", client_random + server_random)
MASTER_SECRET = [
    {
        "name": "OpenSSL/NIST CAVP TLS 1.2 SHA-256 master secret",
        "source": "OPENSSL",
        "hash": "sha256",
        "pre_master_secret": "f8938ecc9edebc5030c0c6a441e213cd24e6f770a50dda07876f8d55da062bca"
        "db386b411fd4fe4313a604fce6c17fbc",
        "client_random": "36c129d01a3200894b9179faac589d9835d58775f9b5ea3587cb8fd0364cae8c",
        "server_random": "f6c9575ed7ddd73e1f7d16eca115415812a43c2b747daaaae043abfb50053fce",
        "master_secret": "202c88c00f84a17a20027079604787461176455539e705be730890602c289a50"
        "01e34eeb3a043e5d52a65e66125188bf",
    },
    {
        "name": "ACVP kdf-components tls v1.2 SHA2-256 tcId 37",
        "source": "ACVP",
        "hash": "sha256",
        "pre_master_secret": "8957843B53B68A49D90DF48D74A48F441752E1DE295DB4B5A59B90165EACEBE9"
        "AC6398121BAE4DA5A63E197DF8F34FA8",
        "client_random": "316A48D98B15D2DDF51EEEF482D696FAC4C815BCC8424DB318AA31EE4DE6F7D6",
        "server_random": "6B3E1E1C1B6FF0D9E794D5AEA459F2C1341D45B13FC18CE5122905FBE652D35C",
        "master_secret": "98161C57B90538688978A15DDDB8130F7DA88602B0AC6FA127DAE00647769032"
        "0B029BACA416CE5FFC830C24804D6174",
    },
    {
        "name": "ACVP kdf-components tls v1.2 SHA2-384 tcId 41",
        "source": "ACVP",
        "hash": "sha384",
        "pre_master_secret": "881201A8A6870282417A30617322165A84870CDF4AC07A4EFCF2A0B452BD9925"
        "FFF8600D37AA9452041E03613E0C1523",
        "client_random": "4D544C19B1CF7B1EF49D853DF6DC260D4524D443E6F01022836FB515BDE6D649",
        "server_random": "D66ABDE5999FF138C44A1B24819841DDAEFE944050509FA7A46EC92609013868",
        "master_secret": "50FC8CE170547997622908AB60C445669E987837CD719091349039A222CE3BE7"
        "3B8A1EDCD461AEF292708F341B5E43EB",
    },
]

# master_secret = PRF(pre_master_secret, "extended master secret", session_hash)
EXTENDED_MASTER_SECRET = [
    {
        "name": "ACVP TLS-v1.2 KDF RFC7627 SHA2-256 tcId 1",
        "source": "ACVP-EMS",
        "hash": "sha256",
        "pre_master_secret": "8252B983A6459A6FB3B9DEBE8725247E276139EBF7C9ADCCDD7D240F3ADA7F5E"
        "3351B2769B6C8DC169A6D799C3C0FFEB",
        "session_hash": "1359D7DF74CB27C67F74C98D521D442B887EAF0DECF6E382C62434D6C3DD7D0D",
        "master_secret": "43A5E821FCF5446C712207F7CD161ED213EE3B9D001D418C57231BEFD596B583"
        "ECD55AB2C4456B02738698F90BC59AC0",
    },
    {
        "name": "ACVP TLS-v1.2 KDF RFC7627 SHA2-256 tcId 2",
        "source": "ACVP-EMS",
        "hash": "sha256",
        "pre_master_secret": "CBF55E41501394407612D1EC385104FA1A8E59EB00832ECCBD0B92C2404AF47E"
        "7171EAEC467F04E06F8DCAE0ADD1BBEE",
        "session_hash": "6D7CBB7E2DFFD4E1AD853998E74C647586838C47B1E113AF5B58586D66A26A4D",
        "master_secret": "89902A83BE5FE73E31A5DFE1F631EFFCCB490326F2781E9983B5695E728F10F9"
        "EA12F659B62DBE98886959AEC0833092",
    },
    {
        "name": "ACVP TLS-v1.2 KDF RFC7627 SHA2-384 tcId 37",
        "source": "ACVP-EMS",
        "hash": "sha384",
        "pre_master_secret": "5441F7CDAA27D119A240EB672B821DC7ABB601D35EAC2BFED54B6FA4958B44E2"
        "E3BE28CD31A357F4A8272EF1C3C3BA16",
        "session_hash": "501F7A2679BCDBD46763B0F93D2A58EA0708A047D37CE903F77C92A6AF6AF8A1"
        "F2D5C882C5C4ED6FA7495F4805089634",
        "master_secret": "0B108E705386E512FD90D2005CE70A1043CBA107A22A086A9CE74A52658F75D3"
        "30FC50CF86425957F3A96DE1EAD7BE32",
    },
    {
        # OpenSSL feeds client_random + server_random as the seed; with the EMS label
        # that is exactly PRF(secret, "extended master secret", seed), so the 64-byte
        # seed stands in for a session hash.
        "name": "OpenSSL TLS1-PRF extended master secret SHA-256, 11-byte secret",
        "source": "OPENSSL",
        "hash": "sha256",
        "pre_master_secret": "0102030405060708090a0b",
        "session_hash": "36c129d01a3200894b9179faac589d9835d58775f9b5ea3587cb8fd0364cae8c"
        "f6c9575ed7ddd73e1f7d16eca115415812a43c2b747daaaae043abfb50053fce",
        "master_secret": "8cb203c99a13871fd96cecd2770720df3c4ebd49e1cbc956fddb400f9c051fb6"
        "9b63d7abb2f996f4e4d1ac0e9153f51b",
    },
]

# key_block = PRF(master_secret, "key expansion", server_random + client_random)
KEY_BLOCK = [
    {
        "name": "OpenSSL/NIST CAVP TLS 1.2 SHA-256 key block",
        "source": "OPENSSL",
        "hash": "sha256",
        "master_secret": "202c88c00f84a17a20027079604787461176455539e705be730890602c289a50"
        "01e34eeb3a043e5d52a65e66125188bf",
        "server_random": "ae6c806f8ad4d80784549dff28a4b58fd837681a51d928c3e30ee5ff14f39868",
        "client_random": "62e1fd91f23f558a605f28478c58cf72637b89784d959df7e946d3f07bd1b616",
        "key_block": "d06139889fffac1e3a71865f504aa5d0d2a2e89506c6f2279b670c3e1b74f531"
        "016a2530c51a3a0f7e1d6590d0f0566b2f387f8d11fd4f731cdd572d2eae927f"
        "6f2f81410b25e6960be68985add6c38445ad9f8c64bf8068bf9a6679485d966f"
        "1ad6f68b43495b10a683755ea2b858d70ccac7ec8b053c6bd41ca299d4e51928",
    },
    {
        "name": "ACVP kdf-components tls v1.2 SHA2-256 tcId 37",
        "source": "ACVP",
        "hash": "sha256",
        "master_secret": "98161C57B90538688978A15DDDB8130F7DA88602B0AC6FA127DAE00647769032"
        "0B029BACA416CE5FFC830C24804D6174",
        "server_random": "5F5FBCD557A9E48E1E7C57543B66D7ACF9BA2C37E937632ADF7134D9A05B554D",
        "client_random": "C6F60E960B0C6A3E8782C5EFE7CAE0B59844DF2D689DC46DF5C8E2C2E86B11E3",
        "key_block": "B9BD890FCB9ED3612F51B08491512550083BC6D6317C9F08F1F271D3B2FF63B5"
        "33F845F185FEE5CD3805DB8556DB9F7D4DC48407085F3296A2F5CC6CF4DA9AA5"
        "330547F5BF5059ACB9A4BDBFD0F2710C90CBACA1654AA78DB76B611D8B236626"
        "44AD8547A21795168FDBB67A1CBB614F89ACB16EAE05FD42FEEA0B196EAF9149",
    },
    {
        "name": "ACVP kdf-components tls v1.2 SHA2-384 tcId 41",
        "source": "ACVP",
        "hash": "sha384",
        "master_secret": "50FC8CE170547997622908AB60C445669E987837CD719091349039A222CE3BE7"
        "3B8A1EDCD461AEF292708F341B5E43EB",
        "server_random": "E318EA4A951D307AE92292E8C41C153DEB8FACCBECC95522C2DBF3179D947A34",
        "client_random": "EABFD42A34D03DED4D28D2B3D7D4217D89B44C349E4F37B8431F1BD20A7DA3BC",
        "key_block": "5D1A227399A31BE2125D7AEC9C9AB7EDBA0C18401DD5AEAE68284BC5FE199394"
        "2753DF75DD1B67BD41CBEAD5E8FE7FFE82FDDA9284D6AD3E3BF3309CB20B55DF"
        "DEDF6B8F13BD92778F8D27193F1D23890F458105BF520BA9328C1EA4792F385D"
        "10EDE4234A0A7E5DE44151F0647276F04486CFFE02CB2614D9F7B70CBBD41E67",
    },
    {
        "name": "ACVP TLS-v1.2 KDF RFC7627 SHA2-256 tcId 1 (key block after EMS)",
        "source": "ACVP-EMS",
        "hash": "sha256",
        "master_secret": "43A5E821FCF5446C712207F7CD161ED213EE3B9D001D418C57231BEFD596B583"
        "ECD55AB2C4456B02738698F90BC59AC0",
        "server_random": "50E0A1A1FD64A55259781A5C22580A81F99799C32F52D3F48D2C10C5C692E289",
        "client_random": "ABE7AF69AFFC5E0944F4009B3E7ABD1CC0A5CCE8DB055EFF4A509E5B6DE9475A",
        "key_block": "4886E75BE82DD4FB73C540729072D3E29B93C164E1CFFE071F1212B1237B98DC"
        "0B0A5895F331F7180CEB30B17BB8C3E92A074B26325FF975237DBD22320C0B88"
        "D64931F39C777B1527D36A999AD5FE5EE7F53FC42A509BEB22634B17EC7B768E"
        "AF6A87977CF8670B34D0A76EBCE6A659DAB6C15B4B86B98B9A63C50BBE1E2A09",
    },
    {
        "name": "ACVP TLS-v1.2 KDF RFC7627 SHA2-384 tcId 37 (key block after EMS)",
        "source": "ACVP-EMS",
        "hash": "sha384",
        "master_secret": "0B108E705386E512FD90D2005CE70A1043CBA107A22A086A9CE74A52658F75D3"
        "30FC50CF86425957F3A96DE1EAD7BE32",
        "server_random": "17CBE1B58A40183B64B2F59F6A94EE7B5E8404AEE72388AA597A339712D72BC9",
        "client_random": "88D002D5CBDB0294F0F9979E2ADBBCE4CE5F75E35E01111AA1AD918DD50935FC",
        "key_block": "1D8CE497E0E3C7F61DE91A69CABEE25C5DAA58A7DE370687BF21786BDCC4DC5D"
        "AB514C121703AEEB1ECBF466A525458CA34C70BF8DBE9DAD3C7D74A0B826BE66"
        "C11DA1709D773C08083C5191D72D24C27B5962D8EFB521B57DB2062055AF3D07"
        "9FDBB8E781C36F8E8DE6640CAFFA039889A771C3299D1E1D54F0050B886A34E9",
    },
]
