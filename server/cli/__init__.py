"""The server's commands, a module per entity; the root CLI loads them only when they run."""
