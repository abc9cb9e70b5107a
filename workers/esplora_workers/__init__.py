"""Celery workers: the app factory, queues, and thin tasks over the services.

``create_app(settings)`` builds the app (no broker connection or settings at import time);
``esplora worker`` runs it; :mod:`esplora_workers.dispatch` enqueues work.
"""
