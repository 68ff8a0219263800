import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from engine_fixtures import client_key, epki, make_configs, server_key  # noqa: E402, F401
