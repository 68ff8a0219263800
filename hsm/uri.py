"""PKCS#11 URIs (RFC 7512): which token, which object.

    pkcs11:token=hsmtls;object=server;type=private
    pkcs11:token=hsmtls;object=server;type=private?module-path=/usr/lib/x.so&pin-source=file:/run/pin

Path attributes name the token and object; query attributes say how to reach them. A
``pin-value`` query attribute is refused: PINs never travel on command lines.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

PATH_ATTRS = {"token", "manufacturer", "serial", "model", "library-description",
              "library-manufacturer", "library-version", "object", "type", "id", "slot-id",
              "slot-description", "slot-manufacturer"}
QUERY_ATTRS = {"module-path", "module-name", "pin-source", "pin-value"}
TYPES = {"private", "public", "cert", "secret-key", "data"}


class URIError(ValueError):
    pass


class PKCS11URI:
    def __init__(self, path: dict[str, str] | None = None, query: dict[str, str] | None = None) -> None:
        self.path = dict(path or {})
        self.query = dict(query or {})

    @classmethod
    def parse(cls, text: str) -> PKCS11URI:
        if not text.startswith("pkcs11:"):
            raise URIError(f"not a PKCS#11 URI (must start with 'pkcs11:'): {text}")
        body = text[len("pkcs11:"):]
        path_part, _, query_part = body.partition("?")
        path: dict[str, str] = {}
        for item in filter(None, path_part.split(";")):
            key, sep, value = item.partition("=")
            if not sep:
                raise URIError(f"PKCS#11 URI attribute without '=': {item!r}")
            key = key.strip().lower()
            if key not in PATH_ATTRS and not key.startswith("x-"):
                raise URIError(f"unknown PKCS#11 URI attribute {key!r}")
            if key in path:
                raise URIError(f"PKCS#11 URI attribute {key!r} given twice")
            path[key] = unquote(value)
        query: dict[str, str] = {}
        for item in filter(None, query_part.split("&")):
            key, _, value = item.partition("=")
            key = key.strip().lower()
            if key not in QUERY_ATTRS and not key.startswith("x-"):
                raise URIError(f"unknown PKCS#11 URI query attribute {key!r}")
            query[key] = unquote(value)
        if "pin-value" in query:
            raise URIError(
                "pin-value in a PKCS#11 URI is refused (it would show in process lists): "
                "use HSMTLS_PIN, --pin-file, or pin-source=file:PATH"
            )
        if "type" in path and path["type"] not in TYPES:
            raise URIError(f"PKCS#11 URI type must be one of {sorted(TYPES)}")
        return cls(path, query)

    @property
    def token(self) -> str | None:
        return self.path.get("token")

    @property
    def object(self) -> str | None:
        return self.path.get("object")

    @property
    def type(self) -> str | None:
        return self.path.get("type")

    @property
    def id(self) -> bytes | None:
        v = self.path.get("id")
        return v.encode("latin-1") if v is not None else None

    def with_path(self, **kw: str) -> PKCS11URI:
        path = dict(self.path)
        path.update({k.replace("_", "-"): v for k, v in kw.items()})
        return PKCS11URI(path, self.query)

    def __str__(self) -> str:
        order = ["token", "manufacturer", "serial", "model", "object", "type", "id"]
        keys = [k for k in order if k in self.path] + sorted(k for k in self.path if k not in order)
        safe = "!$'()*+,:@[]-._~&"
        path = ";".join(f"{k}={quote(self.path[k], safe=safe)}" for k in keys)
        text = "pkcs11:" + path
        if self.query:
            text += "?" + "&".join(f"{k}={quote(v, safe='/:-._~')}" for k, v in sorted(self.query.items()))
        return text
