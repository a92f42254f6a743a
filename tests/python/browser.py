"""Opens a weir dashboard in headless Chromium (via chromedriver), as run by tests/dashboard.rs.

Usage: browser.py URL N SCREENSHOT
Waits until the page is connected and shows at least N points, then prints JSON with the points
the page holds (what the chart plots), the totals it shows, the state badge, the number of
chart series, and every console message of level SEVERE. Saves a screenshot to SCREENSHOT.
"""

import json
import sys
import time

from chromium import open_chromium

url, wanted, screenshot = sys.argv[1], int(sys.argv[2]), sys.argv[3]
driver = open_chromium("1100,720")
try:
    driver.get(url)
    deadline = time.time() + 30
    state, count = None, 0
    while time.time() < deadline:
        state = driver.execute_script("return window.weirDashboard && window.weirDashboard.state()")
        count = driver.execute_script("return window.weirDashboard ? window.weirDashboard.points().length : 0")
        if state == "connected" and count >= wanted:
            break
        time.sleep(0.2)
    time.sleep(0.3)  # let the chart draw the last point
    result = {
        "state": state,
        "points": driver.execute_script("return window.weirDashboard.points()"),
        "totals": driver.execute_script("return window.weirDashboard.totals()"),
        "series": driver.execute_script("return document.querySelectorAll('.u-legend .u-series').length - 1"),
        "title": driver.title,
        "location": driver.current_url,
        "errors": [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"],
    }
    driver.save_screenshot(screenshot)
    print(json.dumps(result, ensure_ascii=False))
    sys.exit(0 if state == "connected" and count >= wanted else 1)
finally:
    driver.quit()
