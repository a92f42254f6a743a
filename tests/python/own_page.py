"""Opens a page of one's own served by weir's dashboard sink (`static_dir`) in headless Chromium,
as run by tests/dashboard.rs.

Usage: own_page.py URL N SCREENSHOT
Waits until the page has received at least N `test_message` events, then prints JSON with what
it received, whether it was told `connected`, whether its chart library loaded, the title and
every console message of level SEVERE. Saves a screenshot to SCREENSHOT.
"""

import json
import sys
import time

from chromium import open_chromium

url, wanted, screenshot = sys.argv[1], int(sys.argv[2]), sys.argv[3]
driver = open_chromium("900,500")
try:
    driver.get(url)
    deadline = time.time() + 30
    received = []
    while time.time() < deadline:
        received = driver.execute_script("return window.received || []")
        if len(received) >= wanted:
            break
        time.sleep(0.2)
    result = {
        "received": received,
        "connected": driver.execute_script("return document.body.dataset.connected || null"),
        "chart": driver.execute_script("return typeof uPlot === 'function' && !!document.querySelector('.uplot')"),
        "title": driver.title,
        "errors": [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"],
    }
    driver.save_screenshot(screenshot)
    print(json.dumps(result, ensure_ascii=False))
    sys.exit(0 if len(received) >= wanted else 1)
finally:
    driver.quit()
