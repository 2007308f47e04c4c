"""The database: SQLAlchemy tables and the queries the services need (SQLite or any SQLAlchemy
URL). Failures surface as ``StoreError``."""
