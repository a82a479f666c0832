"""The local stack: embedded PostgreSQL and Redis when no URLs are set, then every Procfile process."""
