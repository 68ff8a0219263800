"""What the test directories share, imported as `support.<module>` (pyproject.toml puts
tests/ on the path: [tool.pytest.ini_options] pythonpath): required_tools (skip locally,
fail under $CI), pki and openssl_tools (the interop peers), engine_pair, engine_fixtures
and x509_fixtures (engine tests), softhsm (the throwaway token), hil (the board tests'
marks), mp_run (scripts under the MicroPython unix port).

The tests put nothing else on sys.path but two kinds of code that no package holds: the
board's own modules in firmware/lib (boardkey, boardgen: the board imports them by bare
name; tests/unit/test_p256.py and test_engine_ecdsa.py) and the MicroPython scripts of
tests/firmware/scripts and tests/firmware/*_check.py, which run by path on the board's
interpreter and are imported by CPython the same way.
"""
