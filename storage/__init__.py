"""PostgreSQL and Redis: SQL, keys, scripts and the embedded servers. Knows no upper layer."""
