"""Misbehaves against a weir dashboard: sends UNKNOWN_EVENTS events the server does not know, the
last of them 200 kB large. Usage: bad_client.py URL UNKNOWN_EVENTS. Prints JSON with whether the
connection survived (an ignored message must not take the server down)."""

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
for i in range(unknown - 1):
    client.emit("no_such_event", {"i": i})
client.emit("no_such_event", "x" * 200_000)
time.sleep(1)
print(json.dumps({"closed": closed["value"]}))
if not closed["value"]:
    client.disconnect()
