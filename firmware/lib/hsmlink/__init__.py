# hsmlink: the serial link between the board and the host, one definition for both.
# framing.py cuts the raw byte stream into CRC-checked COBS frames and throws away
# whatever is not one; link.py adds sequence numbers, acknowledgements, a byte window
# (the classic ESP32 drops what overflows its 260-byte UART ring) and retransmission;
# protocol.py names the frame types and encodes their payloads. Sans-I/O like tlscore:
# bytes in, frames and bytes out; the serial port, the pty and the clock are the
# caller's. Runs under CPython and MicroPython.

VERSION = 3  # 2: KEYGEN/CSR/INSTALL (on-board key, certificate provisioning)
# 3: application data a slice at a time: RUN's "send_bytes" and WANT; RESULT says
#    "received_bytes" (the bytes came as APP)
