# tlscore: a sans-I/O TLS 1.2 engine (RSA key exchange) for CPython and MicroPython.
# Bytes in (receive_data), events and bytes out (next_events, data_to_send); crypto
# behind a small backend (backend.py); private-key operations as requests the caller
# answers (events.KeyOperationRequest). See client.py and server.py for the flows.

__version__ = "0.1.0"
