"""The SQL store: SQLAlchemy 2 typed models (one module per aggregate) and engine/session factories.

Importing :mod:`esplora.db.models` registers every table on :data:`esplora.db.base.metadata`.
"""
