"""A worker announces itself in the store every few seconds, from its main process.

The CLI reads these rows to say whether any worker is consuming the queues, on every broker
(the filesystem transport has no remote control to ask).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from esplora.db.engine import Store

INTERVAL_S = 10.0
log = logging.getLogger(__name__)

_state: dict[str, Any] = {}


def _loop(store: Store, name: str, queues: list[str], stop: threading.Event) -> None:
    from esplora.services.workers import heartbeat

    while True:
        try:
            heartbeat(
                store, name=name, hostname=socket.gethostname(), queues=queues, pid=os.getpid()
            )
        except Exception as error:  # a missed beat must not kill the worker: try again
            log.warning("heartbeat of %s failed: %s", name, error)
        if stop.wait(INTERVAL_S):
            return


@worker_ready.connect
def _start(sender: Any = None, **_: Any) -> None:
    from esplora.services.database import open_store

    app = sender.app
    store = open_store(app.conf.esplora_settings)
    name = sender.hostname
    queues = sorted(q.name for q in sender.task_consumer.queues) if sender.task_consumer else []
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(store, name, queues, stop), daemon=True)
    _state.update(store=store, name=name, stop=stop, thread=thread)
    thread.start()


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    from esplora.services.workers import forget

    if "stop" not in _state:
        return
    _state["stop"].set()
    _state["thread"].join(timeout=5)
    forget(_state["store"], _state["name"])
    _state["store"].dispose()


@worker_process_init.connect
def _forget_in_child(**_: Any) -> None:
    # A prefork child inherits the parent's heartbeat engine: never close its connections here.
    store = _state.pop("store", None)
    if store is not None:
        store.engine.dispose(close=False)
    _state.clear()
