"""The Worker: the FastAPI app of api.py, run by the Workers SDK's ASGI adapter.

workers.asgi turns each JS Request into an ASGI scope (the Worker's env in scope["env"], where
authpi_worker reads its variables) and the app's answer into a JS Response. Nothing here runs
at import but building the app: the deploy snapshot takes no I/O.
"""

from workers import WorkerEntrypoint, asgi

from api import app


class Default(WorkerEntrypoint):
    async def fetch(self, request: object) -> object:
        return await asgi.fetch(app, request, self.env)
