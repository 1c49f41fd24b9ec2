"""What several test files share: real services (Ray nodes, an MLflow server, PostgreSQL),
dataset fixtures on disk, and plug-ins the searches load by name (``helpers.planted``,
``helpers.textured_scenes``: ``tests/`` on ``PYTHONPATH``)."""
