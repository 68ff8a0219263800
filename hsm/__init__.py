"""PKCS#11 token support for hsmtls."""
