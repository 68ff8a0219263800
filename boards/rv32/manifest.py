# ruff: noqa: F821  (include and module are the manifest API, given by the build)
#
# The rv32 machine's frozen modules (hsmtls board build --machine rv32): the firmware as
# firmware/manifest.py lists it over this board's boot (boot_manifest.py), and main.py
# itself, so that the image boots into link mode with nothing on its flash but the
# board's files.
include("../../firmware/manifest.py", base="$(BOARD_DIR)/boot_manifest.py")
module("main.py", base_path="../../firmware")
# the Montgomery product in RISC-V assembly, which tlscore.montgomery takes where it is
# (no other machine's compiler has asm_rv32: not in firmware/lib, which deploy compiles
# for every board)
module("mont_rv32.py")
