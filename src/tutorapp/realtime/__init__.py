"""Realtime: Supabase Realtime's protocol (Phoenix channels) at `/realtime/v1/websocket`.

Domains register who may read their topics (`topics.register`) and publish their
events after commit (`hub.publish_change`); realtime imports no domain. See
docs/realtime.md.
"""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    from tutorapp.realtime.socket import websocket_endpoint

    # supabase-js and supabase-py both connect to `<url>/realtime/v1/websocket`
    app.add_api_websocket_route("/realtime/v1/websocket", websocket_endpoint)
