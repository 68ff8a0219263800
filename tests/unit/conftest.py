from support.engine_fixtures import client_ec_key, client_key, epki, make_configs, server_key  # noqa: F401
