"""The Store boundary and its implementations: the only package that imports sqlite3 or coredis."""
