# ruff: noqa: F821  (include is the manifest API, given by the build)
#
# The unix32 machine's frozen modules (hsmtls board build --machine unix32): the unix
# port's own base manifest, which is variants/manifest.py (the unix port has no
# boards/manifest.py), and the firmware's modules as firmware/manifest.py lists them.

include("../../firmware/manifest.py", base="$(PORT_DIR)/variants/manifest.py")
