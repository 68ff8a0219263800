"""`hsmtls token ...` and `hsmtls ca ...`: provisioning keys and certificates in a token."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click

from hsmtls.cli.common import fail, module_option, pin_file_option
from hsmtls.hsm.token import TokenError


def _token_uri(token_label: str | None) -> str:
    label = token_label or os.environ.get("HSMTLS_TOKEN")
    return f"pkcs11:token={label}" if label else "pkcs11:"


token_option = click.option("--token", "token_label", help="Token label (default: $HSMTLS_TOKEN, else the only token).")


@click.group()
def token() -> None:
    """Create tokens and keys (SoftHSM2 or a real PKCS#11 token)."""


@token.command("init")
@click.option("--label", required=True, help="Token label.")
@click.option("--softhsm-dir", type=click.Path(), help="Directory for a private SoftHSM2 store (default: per-user data dir).")
@click.option("--force", is_flag=True, help="Allow initialising a token that is not SoftHSM2 (erases it).")
@module_option
@pin_file_option
def token_init(label, softhsm_dir, force, module, pin_file) -> None:
    """Create a token; prints the environment to use it."""
    from hsmtls.hsm.provision import (
        check_can_init,
        default_softhsm_dir,
        init_token,
        write_softhsm_conf,
    )
    from hsmtls.hsm.token import read_pin
    from hsmtls.keys import write_private_file

    env_lines = []
    if softhsm_dir or not os.environ.get("SOFTHSM2_CONF"):
        directory = Path(softhsm_dir) if softhsm_dir else default_softhsm_dir()
        conf = write_softhsm_conf(directory)
        os.environ["SOFTHSM2_CONF"] = str(conf)
        env_lines.append(f"export SOFTHSM2_CONF={conf}")
    else:
        directory = Path(os.environ["SOFTHSM2_CONF"]).parent
    try:
        user_pin = read_pin(pin_file)
        so_pin = os.environ.get("HSMTLS_SO_PIN")
        so_note = ""
        so_file = None
        check_can_init(label, module, force)
        if not so_pin:
            so_pin = secrets.token_hex(8)
            so_file = directory / f"{label}.so-pin"
            try:  # 0600 from the start, and never over an SO PIN kept before
                write_private_file(so_file, (so_pin + "\n").encode(), exclusive=True)
            except FileExistsError:
                raise TokenError(f"{so_file} exists: keep it (it may be another token's SO PIN) and "
                                 "pass this token's with HSMTLS_SO_PIN, or remove it") from None
            except OSError as e:
                raise TokenError(f"cannot write the SO PIN to {so_file}: {e.strerror}") from None
            so_note = f" (SO PIN written to {so_file})"
        try:
            tok = init_token(label, user_pin, so_pin, module, force)
        except TokenError:
            if so_file is not None:
                so_file.unlink()  # no SO PIN file for a token that was not made
            raise
    except TokenError as e:
        fail(str(e))
    click.echo(f"token {label!r} initialised in {tok.module_path}{so_note}")
    env_lines.append(f"export HSMTLS_TOKEN={label}")
    click.echo("use it with:")
    for line in env_lines:
        click.echo(f"  {line}")


@token.command("list")
@module_option
@pin_file_option
@click.option("--no-login", is_flag=True, help="List without logging in (public objects only).")
def token_list(module, pin_file, no_login) -> None:
    """Tokens and their objects as PKCS#11 URIs."""
    from hsmtls.hsm.provision import list_objects
    from hsmtls.hsm.token import Token, find_module, load_module, read_pin
    from hsmtls.hsm.uri import PKCS11URI

    try:
        path = find_module(module)
        lib = load_module(path)
        tokens = [t for t in lib.get_tokens() if t.label]
        if not tokens:
            click.echo(f"no tokens in {path}")
            return
        pin = None if no_login else read_pin(pin_file, prompt=True)
        for t in tokens:
            tok = Token(PKCS11URI({"token": t.label}), path)
            click.echo(f"pkcs11:token={t.label}  ({t.manufacturer_id.strip()} {t.model.strip()}, serial {t.serial.decode(errors='replace').strip() if isinstance(t.serial, bytes) else str(t.serial).strip()})")
            for row in list_objects(tok, pin):
                extra = []
                if "key_type" in row:
                    extra.append(f"{row['key_type']}{'-' + str(row['bits']) if 'bits' in row else ''}")
                for flag in ("sensitive", "extractable"):
                    if flag in row:
                        extra.append(f"{flag}={'yes' if row[flag] else 'no'}")
                click.echo(f"  {row['uri']}  {' '.join(extra)}")
    except TokenError as e:
        fail(str(e))


@token.command("keygen")
@click.option("--object", "name", required=True, help="Key label.")
@click.option("--bits", type=click.Choice(["2048", "3072", "4096"]), default="2048", show_default=True)
@click.option("--implicit-rejection-only", is_flag=True,
              help="Only (re)make the existing key's implicit-rejection key (replaces a wrongly made one).")
@click.option("--ticket-key", is_flag=True,
              help="Make a new session ticket key (AES-256, in the token) for server key NAME; the previous one "
              "still opens tickets until they expire, older ones are destroyed.")
@token_option
@module_option
@pin_file_option
def token_keygen(name, bits, implicit_rejection_only, ticket_key, token_label, module, pin_file) -> None:
    """Generate an RSA key pair inside the token (private key never leaves it)."""
    from hsmtls.hsm.provision import keygen, remake_implicit_rejection_key
    from hsmtls.hsm.token import Token, read_pin
    from hsmtls.hsm.uri import PKCS11URI

    if implicit_rejection_only and ticket_key:
        fail("--implicit-rejection-only and --ticket-key are separate commands")
    try:
        from hsmtls.progress import status

        tok = Token(PKCS11URI.parse(_token_uri(token_label)), module)
        pin = read_pin(pin_file)
        if ticket_key:
            from hsmtls.hsm.tickets import make_ticket_key

            uri = make_ticket_key(tok, pin, name)
        elif implicit_rejection_only:
            uri = remake_implicit_rejection_key(tok, pin, name)
        else:
            with status(f"generating an RSA-{bits} key pair inside token {tok.label!r} ..."):
                uri = keygen(tok, pin, name, int(bits))
    except TokenError as e:
        fail(str(e))
    click.echo(str(uri))


@token.command("import")
@click.argument("key_pem", type=click.Path(exists=True))
@click.option("--object", "name", required=True, help="Key label.")
@token_option
@module_option
@pin_file_option
def token_import(key_pem, name, token_label, module, pin_file) -> None:
    """Import an existing RSA key (stored sensitive, non-extractable)."""
    from hsmtls.hsm.provision import import_key
    from hsmtls.hsm.token import Token, read_pin
    from hsmtls.hsm.uri import PKCS11URI

    try:
        tok = Token(PKCS11URI.parse(_token_uri(token_label)), module)
        uri = import_key(tok, read_pin(pin_file), name, key_pem)
    except TokenError as e:
        fail(str(e))
    click.echo(str(uri))


@click.group()
def ca() -> None:
    """A certificate authority whose key is in the token."""


def _token_key(uri: str, module: str | None, pin_file: str | None):
    from hsmtls.hsm.keyops import TokenKey

    return TokenKey(uri, module=module, pin_file=pin_file, pool_size=1, implicit_rejection=False)


def _signed_in_token(uri: str, module: str | None, pin_file: str | None, make):
    """make(key) with the token's key at `uri`, the key closed after; a token or URI
    error ends the command."""
    from hsmtls.hsm.uri import URIError

    try:
        key = _token_key(uri, module, pin_file)
        made = make(key)
        key.close()
    except (TokenError, URIError) as e:
        fail(str(e))
    return made


def _write_pem(out: str, obj) -> None:
    from cryptography.hazmat.primitives import serialization

    Path(out).write_bytes(obj.public_bytes(serialization.Encoding.PEM))


@ca.command("init")
@click.option("--key", "key_uri", required=True, help="pkcs11: URI of the CA key.")
@click.option("--subject", required=True, help='e.g. "CN=hsmtls CA,O=example"')
@click.option("--days", default=3650, show_default=True, type=int)
@click.option("--out", required=True, type=click.Path())
@module_option
@pin_file_option
def ca_init_cmd(key_uri, subject, days, out, module, pin_file) -> None:
    """Self-signed CA certificate, signed inside the token."""
    from hsmtls.hsm.provision import ca_init

    cert = _signed_in_token(key_uri, module, pin_file, lambda key: ca_init(key, subject, days))
    _write_pem(out, cert)
    click.echo(f"wrote {out}: {cert.subject.rfc4514_string()}")


@ca.command("crl")
@click.option("--ca-key", "ca_key_uri", required=True, help="pkcs11: URI of the CA key.")
@click.option("--ca-cert", required=True, type=click.Path(exists=True))
@click.option("--revoke", multiple=True, help="Certificate PEM or serial number (hex) to revoke; repeatable.")
@click.option("--days", default=7, show_default=True, type=int, help="Days until the next update is due.")
@click.option("--out", required=True, type=click.Path())
@module_option
@pin_file_option
def ca_crl_cmd(ca_key_uri, ca_cert, revoke, days, out, module, pin_file) -> None:
    """Certificate revocation list, signed inside the token (for `serve --crl`)."""
    from cryptography import x509

    from hsmtls.hsm.provision import crl_sign_in_token

    serials = []
    for item in revoke:
        if Path(item).exists():
            serials.append(x509.load_pem_x509_certificate(Path(item).read_bytes()).serial_number)
        else:
            try:
                serials.append(int(item, 16))  # hex, as openssl prints serials (0x optional)
            except ValueError:
                fail(f"--revoke {item!r} is neither a certificate file nor a serial number")

    def sign(key):
        return crl_sign_in_token(key, x509.load_pem_x509_certificate(Path(ca_cert).read_bytes()), serials, days)

    crl = _signed_in_token(ca_key_uri, module, pin_file, sign)
    _write_pem(out, crl)
    click.echo(f"wrote {out}: {len(serials)} revoked, next update {crl.next_update_utc:%Y-%m-%d}, signed in the token")


@ca.command("issue")
@click.option("--ca-key", "ca_key_uri", required=True, help="pkcs11: URI of the CA key.")
@click.option("--ca-cert", required=True, type=click.Path(exists=True))
@click.option("--profile", type=click.Choice(["server", "client"]), required=True)
@click.option("--csr", type=click.Path(exists=True), help="Certificate request (PEM).")
@click.option("--public-key", "public_key", help="Subject public key: pkcs11: URI or PEM file.")
@click.option("--subject", help='e.g. "CN=localhost" (default: the CSR subject)')
@click.option("--san", multiple=True, help="DNS:name or IP:address; repeatable.")
@click.option("--days", default=365, show_default=True, type=int)
@click.option("--out", required=True, type=click.Path())
@module_option
@pin_file_option
def ca_issue_cmd(ca_key_uri, ca_cert, profile, csr, public_key, subject, san, days, out, module, pin_file) -> None:
    """Issue a server or client certificate; the signature is made in the token."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from hsmtls.hsm.provision import ca_issue, parse_sans, parse_subject, public_key_from_token
    from hsmtls.hsm.token import read_pin
    from hsmtls.hsm.uri import URIError

    if bool(csr) == bool(public_key):
        fail("give exactly one of --csr REQ.pem or --public-key URI|PEM")
    try:
        if csr:
            req = x509.load_pem_x509_csr(Path(csr).read_bytes())
            if not req.is_signature_valid:
                fail(f"the signature on {csr} does not verify")
            pub = req.public_key()
            name = parse_subject(subject) if subject else req.subject
            if not san:
                try:
                    ext = req.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                    sans = list(ext.value)
                except x509.ExtensionNotFound:
                    sans = []
            else:
                sans = parse_sans(san)
        else:
            if not subject:
                fail("--subject is needed with --public-key")
            if public_key.startswith("pkcs11:"):
                pub = public_key_from_token(public_key, module, read_pin(pin_file))
            else:
                pub = serialization.load_pem_public_key(Path(public_key).read_bytes())
            name = parse_subject(subject)
            sans = parse_sans(san)
        if not isinstance(pub, rsa.RSAPublicKey):
            fail("only RSA subject keys are supported")

        def issue(key):
            cacert = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
            return ca_issue(key, cacert, profile, pub, name, sans, days)

        cert = _signed_in_token(ca_key_uri, module, pin_file, issue)
    except (TokenError, URIError, ValueError) as e:
        fail(str(e))
    _write_pem(out, cert)
    click.echo(f"wrote {out}: {cert.subject.rfc4514_string()} ({profile}, signed in the token)")
