"""The web console and REST API: a process of its own (`pbx-bridge web`), so web load
never delays a call; it shares the database and the storage layer's code with the CLI."""
