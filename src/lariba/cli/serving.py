"""The API server ``lariba serve`` runs: uvicorn, ending live event streams as it stops."""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from lariba.monitoring.events.stream import close_event_streams


class ApiServer(uvicorn.Server):
    """uvicorn waits for every open response before it stops, and a live event stream
    never ends on its own: end the streams as the shutdown begins."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if isinstance(self.config.app, FastAPI):
            close_event_streams(self.config.app)
        await super().shutdown(sockets)
