"""The tutorial's side of the conversation with a Socket.IO 2.x-era client (python-socketio 4,
Engine.IO 3): send `test_connect`, get `connected`, then read `test_message` events.

Usage: sio2_client.py URL N — prints {"connected": ..., "messages": [...]} and exits 1 on timeout.
"""

import json
import sys
import threading

import socketio

url, wanted = sys.argv[1], int(sys.argv[2])
got = {"connected": None, "messages": []}
done = threading.Event()
client = socketio.Client(reconnection=False)


@client.event
def connect():
    client.emit("test_connect", {"data": "I'm connected!"})


@client.on("connected")
def on_connected(data):
    got["connected"] = data
    if len(got["messages"]) >= wanted:
        done.set()


@client.on("test_message")
def on_message(data):
    got["messages"].append(data)
    if got["connected"] and len(got["messages"]) >= wanted:
        done.set()


client.connect(url, transports=["polling", "websocket"])
ok = done.wait(timeout=30)
client.disconnect()
print(json.dumps(got))
sys.exit(0 if ok else 1)
