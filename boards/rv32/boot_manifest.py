# ruff: noqa: F821  (module is the manifest API, given by the build)
#
# What the rv32 machine has where an ESP32 port has its own boards/manifest.py (the
# qemu port has none): the board's boot, which mounts its flash.
module("_boot.py")
