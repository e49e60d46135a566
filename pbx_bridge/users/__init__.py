"""Users, roles, API tokens and console sessions (issue 10). The web console and the
REST API use :mod:`pbx_bridge.users.auth`; the CLI manages users and tokens."""
