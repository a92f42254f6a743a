"""Checks that the dashboard page reconnects by itself when its server restarts.

Usage: browser_reconnect.py URL. Prints "up" once the page is connected, then waits for the
page to notice the server is gone ("down") and to be connected again with fresh points; prints a
JSON result line and exits 0 on success.
"""

import json
import sys
import time

from chromium import open_chromium

driver = open_chromium()


def state():
    return driver.execute_script("return window.weirDashboard ? window.weirDashboard.state() : null")


def wait_for(predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


try:
    driver.get(sys.argv[1])
    ok = wait_for(lambda: state() == "connected", 20)
    print("up" if ok else "never connected", flush=True)
    went_down = ok and wait_for(lambda: state() != "connected", 30)
    print("down" if went_down else "never went down", flush=True)
    back = went_down and wait_for(
        lambda: state() == "connected"
        and driver.execute_script("return window.weirDashboard.points().length") > 0, 60)
    print(json.dumps({"reconnected": back, "state": state()}), flush=True)
    sys.exit(0 if back else 1)
finally:
    driver.quit()
