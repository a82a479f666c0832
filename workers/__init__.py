"""The task edge: the Celery entry (app.py), tasks by topic, and pure media functions (media/)."""
