"""Kombu's filesystem transport, with messages that appear and disappear atomically.

kombu 5.7's ``filesystem`` transport creates a message file and *then* writes it, and a consumer
takes a message by ``shutil.move`` into the system's temporary folder. A consumer that polls
between the creation and the write takes an empty file, fails to decode it and the message is
gone (kombu#1551 is this symptom); where the temporary folder is on another file system the move
is a copy, and two workers copying the same message into the same temporary path can read each
other's half copy. With a worker enqueueing the next stage after every batch, both happen in a
pipeline run often enough to strand a batch (measured: 1 % of messages with two consumers).

Here a message is written under a hidden name and renamed into place, and a consumer takes one
by renaming it into ``processed_folder`` (beside the messages, the same file system): a rename
is atomic, so every message is read whole, by exactly one consumer.

The transport polls the folder. A worker at its prefetch limit (one task per pool process, late
acks) cannot take a message, so kombu sleeps a polling interval before it looks again, even when
the task has just finished and the next message waits: up to one interval between every two
tasks. Here an acknowledgement (or rejection) ends that wait at once.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

Empty = filesystem.Empty


class Channel(filesystem.Channel):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Path(self.processed_folder).mkdir(parents=True, exist_ok=True)  # _get renames into it

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = Path(self.data_folder_out)
        hidden = folder / f".{name}.part"  # a name no consumer takes
        hidden.write_bytes(str_to_bytes(dumps(payload)))
        hidden.replace(folder / name)

    def _get(self, queue: str) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):  # noqa: PTH208  (names, sorted)
            if name.startswith(".") or name.partition(".")[2] != wanted:
                continue
            taken = Path(self.processed_folder) / name
            try:
                (Path(self.data_folder_in) / name).rename(taken)
            except OSError:  # another consumer took it first
                continue
            payload = taken.read_bytes()
            if not self.store_processed:
                taken.unlink()
            return loads(bytes_to_str(payload))
        raise Empty()

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple=multiple)
        _room_for_more(self.connection)

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue=requeue)
        _room_for_more(self.connection)


def _room_for_more(transport: Any) -> None:
    room = getattr(transport, "room", None)
    if room is not None:
        room.set()


class Transport(filesystem.Transport):  # type: ignore[misc]
    Channel = Channel

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.room = threading.Event()  # set when a message is settled: a prefetch slot is free

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:
        """kombu's loop, but the wait between two polls ends when a message is settled."""
        start = monotonic()
        interval = self.polling_interval
        if timeout and interval and interval > timeout:
            interval = timeout
        while True:
            self.room.clear()
            try:
                self.cycle.get(self._deliver, timeout=timeout)
            except Empty:
                if timeout is not None and monotonic() - start >= timeout:
                    raise TimeoutError() from None
                if interval is not None:
                    self.room.wait(interval)
            else:
                return
