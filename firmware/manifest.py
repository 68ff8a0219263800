# ruff: noqa: F821  (include, package, module and options are the manifest API, given by the build)
#
# The firmware's code frozen into a MicroPython image: bytecode, constants and qstrs in
# flash, executed in place, so the GC heap holds only what the code builds when it runs
# (on a classic ESP32 without SPIRAM the code loaded from the filesystem takes about
# 140 KB of its ~110 KB heap; see README, "The board"). With MicroPython's sources and
# ESP-IDF (neither is on PyPI, so this is built outside this repository's CI):
#
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/abs/path/to/firmware/manifest.py
#   hsmtls board flash --board esp32-devkitc --port /dev/ttyUSB0 \
#       --image ports/esp32/build-ESP32_GENERIC/firmware.bin --erase
#   hsmtls board deploy --board esp32-devkitc --port /dev/ttyUSB0 --frozen
#
# (BOARD=ESP32_GENERIC_S3 or ESP32_GENERIC_C3 for the other boards in boards/.) deploy
# --frozen copies main.py only and checks that boardapp.board is imported from the image.
# tests/unit/test_manifest.py holds this list to what `hsmtls board deploy` ships.

# the port's own frozen modules (asyncio, the network helpers, ...): an ESP32 port's
# boards/manifest.py unless the including manifest names another, as the unix port's
# boards/unix32/manifest.py does (include(this file, base=...))
options.defaults(base="$(PORT_DIR)/boards/manifest.py")
include(options.base)

# the engine, the serial link, the board port (relative paths: this file's directory)
package("tlscore", base_path="lib")
package("hsmlink", base_path="lib")
package("board_port", base_path="lib")

# the board's app (boardapp/: board and session, loaded at boot; what they load on demand:
# autorun, status, the board's own key, provisioning, the checks on the host's requests
# (trust), the benchmark's mbedTLS session)
package("boardapp", base_path="lib")
