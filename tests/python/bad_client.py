"""Misbehaves against a weir dashboard: sends UNKNOWN_EVENTS events the server does not know, then
one 200 kB message (over the dashboard's 64 KiB limit). Usage: bad_client.py URL UNKNOWN_EVENTS.
Prints JSON with whether the server closed the connection (it should, after the large message;
ignoring the unknown events must not take the server down)."""

import json
import sys
import time

import socketio

url, unknown = sys.argv[1], int(sys.argv[2])
client = socketio.Client(reconnection=False)
closed = {"value": False}


@client.event
def disconnect(*_args):
    closed["value"] = True


client.connect(url, transports=["websocket"])
for i in range(unknown):
    client.emit("no_such_event", {"i": i})
client.emit("no_such_event", "x" * 200_000)
time.sleep(1)
print(json.dumps({"closed": closed["value"]}))
if not closed["value"]:
    client.disconnect()
