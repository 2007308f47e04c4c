"""Alembic's migration scripts (``env.py``, ``versions/``), run by ``db.schema.upgrade``; no
``alembic.ini`` is needed (the configuration is built in code)."""
