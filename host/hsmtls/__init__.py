"""hsmtls host side: TLS server and client around the tlscore engine, and the CLI."""

__version__ = "0.1.0"
