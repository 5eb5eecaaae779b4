"""Built-in backends, each an ordinary clconv plugin (see ``clconv.plugins.DEFAULT_PLUGINS``)."""
