"""Opens a weir dashboard with several panels in headless Chromium (via chromedriver), as run by
tests/dashboard.rs.

Usage: panels.py URL N SCREENSHOT
Waits until the page is connected and every panel holds at least N windows, then prints JSON
with what each panel holds and shows (window.weirDashboard.panels()), what the page's DOM shows
per panel (bar rows, table rows, the number, chart series), the title and every console message of
level SEVERE. Saves a screenshot to SCREENSHOT.
"""

import json
import sys
import time

from chromium import open_chromium

url, wanted, screenshot = sys.argv[1], int(sys.argv[2]), sys.argv[3]
driver = open_chromium("1100,1600")
try:
    driver.get(url)
    deadline = time.time() + 40
    state, ready = None, False
    while time.time() < deadline:
        state = driver.execute_script("return window.weirDashboard && window.weirDashboard.state()")
        counts = driver.execute_script(
            "return window.weirDashboard ? window.weirDashboard.panels().map(p => p.points.length) : []")
        ready = state == "connected" and len(counts) > 0 and min(counts) >= wanted
        if ready:
            break
        time.sleep(0.2)
    # Read what the panels hold and what the DOM shows in one go, so both describe one moment.
    result = driver.execute_script("""
      const panels = window.weirDashboard.panels();
      const dom = Array.from(document.querySelectorAll('section.panel')).map((s) => ({
        type: s.dataset.type,
        heading: (s.querySelector('h2') || {}).textContent || null,
        bars: Array.from(s.querySelectorAll('.bar-row')).map((r) =>
          [r.querySelector('.bar-label').textContent, r.querySelector('strong').textContent]),
        rows: Array.from(s.querySelectorAll('tbody tr')).map((r) =>
          Array.from(r.cells).map((c) => c.textContent)),
        number: (s.querySelector('.number') || {}).textContent || null,
        series: s.querySelectorAll('.u-legend .u-series').length - 1,
      }));
      return { panels: panels, dom: dom };
    """)
    result.update({
        "state": state,
        "title": driver.title,
        "errors": [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"],
    })
    driver.save_screenshot(screenshot)
    print(json.dumps(result, ensure_ascii=False))
    sys.exit(0 if ready else 1)
finally:
    driver.quit()
