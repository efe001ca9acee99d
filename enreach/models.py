"""No models. The module exists so that `migrate` sends this app ``post_migrate`` (Django skips apps without a
models module), which creates the database cache's table: see ``enreach.apps``."""
