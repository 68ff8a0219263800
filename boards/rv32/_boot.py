# The rv32 machine's boot, frozen into its image and run by board.c after every reset,
# before main.py: the board's flash (a directory on the host) mounted at /, as an
# ESP32's filesystem is.
import board_port

board_port.mount_flash()
del board_port
