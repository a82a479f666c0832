"""The HTTP edge: create_app(settings), blueprints per resource, auth, rate limits, error mapping."""
