"""Connects to a weir dashboard with python-socketio, as a script run by tests/dashboard.rs.

Usage: sio_client.py URL N [TOKEN] [--plain] [--polling] [--header NAME:VALUE ...]
Waits for the `config` and `history` events, N `window` events and as many `test_message`
events, sends `test_connect` and waits for `connected`, then prints one JSON object with what it
received. Exits 1 with a message when something does not arrive in time.
With --plain it behaves like the dashboard's own page: no `test_connect`, and it waits for the
`window` events only (it should get no `test_message`). With --polling it uses HTTP long-polling
instead of a WebSocket.
"""

import json
import sys
import threading

import socketio

plain = "--plain" in sys.argv
polling = "--polling" in sys.argv
headers = {}
args = []
rest = iter(sys.argv[1:])
for a in rest:
    if a in ("--plain", "--polling"):
        continue
    if a == "--header":
        name, value = next(rest).split(":", 1)
        headers[name] = value
        continue
    args.append(a)
url, wanted = args[0], int(args[1])
token = args[2] if len(args) > 2 else None
got = {"config": None, "history": None, "windows": [], "tutorial": [], "connected": None}
done = threading.Event()
client = socketio.Client(reconnection=False)


def complete():
    tutorial_done = plain or (got["connected"] and len(got["tutorial"]) >= wanted)
    return bool(got["config"] and got["history"] is not None and len(got["windows"]) >= wanted
                and tutorial_done)


def check():
    if complete():
        done.set()


@client.event
def disconnect(*_):
    done.set()  # refused, or the server went away: stop waiting


@client.on("refused")
def on_refused(data):
    got["refused"] = data


@client.event
def connect():
    if not plain:
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
    client.connect(url, auth={"token": token} if token else None, headers=headers,
                   transports=["polling"] if polling else ["websocket"], wait_timeout=10)
except Exception as e:  # noqa: BLE001 - report any connection failure as the test's result
    print(json.dumps({"error": f"connect failed: {e}"}))
    sys.exit(1)
done.wait(timeout=30)
ok = complete()
client.disconnect()
print(json.dumps(got, ensure_ascii=False))
sys.exit(0 if ok else 1)
