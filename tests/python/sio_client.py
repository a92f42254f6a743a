"""Connects to a weir dashboard with python-socketio, as a script run by tests/dashboard.rs.

Usage: sio_client.py URL N [TOKEN]
Waits for the `config` and `history` events, N `window` events and as many `test_message`
events, sends `test_connect` and waits for `connected`, then prints one JSON object with what it
received. Exits 1 with a message when something does not arrive in time.
"""

import json
import sys
import threading

import socketio

url, wanted = sys.argv[1], int(sys.argv[2])
token = sys.argv[3] if len(sys.argv) > 3 else None
got = {"config": None, "history": None, "windows": [], "tutorial": [], "connected": None}
done = threading.Event()
client = socketio.Client(reconnection=False)


def check():
    if (got["config"] and got["history"] is not None and got["connected"]
            and len(got["windows"]) >= wanted and len(got["tutorial"]) >= wanted):
        done.set()


@client.event
def connect():
    client.emit("test_connect", {"data": "I'm connected!"})


@client.on("config")
def on_config(data):
    got["config"] = data


@client.on("history")
def on_history(data):
    got["history"] = data
    check()


@client.on("window")
def on_window(data):
    got["windows"].append(data)
    check()


@client.on("test_message")
def on_tutorial(data):
    got["tutorial"].append(data)
    check()


@client.on("connected")
def on_connected(data):
    got["connected"] = data
    check()


try:
    client.connect(url, auth={"token": token} if token else None, transports=["websocket"], wait_timeout=10)
except Exception as e:  # noqa: BLE001 - report any connection failure as the test's result
    print(json.dumps({"error": f"connect failed: {e}"}))
    sys.exit(1)
ok = done.wait(timeout=30)
client.disconnect()
print(json.dumps(got, ensure_ascii=False))
sys.exit(0 if ok else 1)
