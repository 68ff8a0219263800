

from support.engine_fixtures import client_key, epki, make_configs, server_key  # noqa: F401
