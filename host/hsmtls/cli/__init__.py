"""The `hsmtls` command line, assembled here from one module a command group: main.py
(the `hsmtls` group: serve, connect, demo), board.py (board: the board itself),
board_sessions.py (board handshake, autorun, bench; bridge), token.py (token, ca),
bench.py (bench), and common.py (what they share: how a command fails, HOST:PORT, the
token options). `hsmtls = "hsmtls.cli:main"` is the console script."""

from hsmtls.cli.bench import bench
from hsmtls.cli.board import board
from hsmtls.cli.board_sessions import autorun, bridge, handshake
from hsmtls.cli.board_sessions import bench as board_bench
from hsmtls.cli.main import main
from hsmtls.cli.token import ca, token

board.add_command(handshake)
board.add_command(autorun)
board.add_command(board_bench)
main.add_command(board)
main.add_command(bridge)
main.add_command(token)
main.add_command(ca)
# `hsmtls bench board` is `hsmtls board bench`: one command, two places to find it
bench.add_command(board_bench, "board")
main.add_command(bench)

__all__ = ["main"]
