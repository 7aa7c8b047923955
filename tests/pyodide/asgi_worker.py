"""The Pyodide ASGI stage's Worker: tests/pyodide/asgi_app.py's Starlette app through the
Workers SDK's own ASGI adapter, as examples/fastapi/src/worker.py runs FastAPI's. Inside
Pyodide only; CPython never imports it."""

from asgi_app import app
from workers import WorkerEntrypoint, asgi


class Default(WorkerEntrypoint):
    async def fetch(self, request: object) -> object:
        return await asgi.fetch(app, request, self.env)
