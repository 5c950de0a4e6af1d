# WebSocket routes, gathered from the apps that serve them.
from django.urls import path

from runs import consumers as run_consumers

websocket_urlpatterns: list = [
    path("ws/runs/", run_consumers.RunsConsumer.as_asgi()),
    path("ws/runs/<int:run_id>/", run_consumers.RunEventsConsumer.as_asgi()),
]
