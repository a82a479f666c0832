"""The state: tables, sessions, domain operations and storage. Imports neither web nor workers."""
