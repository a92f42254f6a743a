"""Opens the control API's graph page in headless Chromium (via chromedriver), as run by
tests/observe.rs.

Usage: graph_page.py URL TOKEN SCREENSHOT
Enters TOKEN in the page's form when it asks for one, waits until every stage the page draws has
a rate and the stages that receive records show a non-zero rate in, then prints JSON with what
the page shows (`window.weirGraph.stages()`), its state, and every console message of level
SEVERE. Saves a screenshot to SCREENSHOT.
"""

import json
import sys
import time

from chromium import open_chromium
from selenium.webdriver.common.by import By

url, token, screenshot = sys.argv[1], sys.argv[2], sys.argv[3]
driver = open_chromium("1000,520")
try:
    driver.get(url)
    deadline = time.time() + 30
    stages, state = [], None
    while time.time() < deadline:
        state = driver.execute_script("return window.weirGraph && window.weirGraph.state()")
        if state == "login":
            driver.find_element(By.ID, "token").send_keys(token)
            driver.find_element(By.CSS_SELECTOR, "#login button").click()
        stages = driver.execute_script("return window.weirGraph ? window.weirGraph.stages() : []")
        receiving = [s for s in stages if not s["path"].startswith("sources.")]
        if state == "live" and receiving and all((s["rateIn"] or 0) > 0 for s in receiving):
            break
        time.sleep(0.2)
    result = {
        "state": state,
        "stages": stages,
        "svg_stages": len(driver.find_elements(By.CSS_SELECTOR, "svg .stage")),
        "edges": len(driver.find_elements(By.CSS_SELECTOR, "svg .edge")),
        "location": driver.current_url,
        "errors": [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"],
    }
    driver.save_screenshot(screenshot)
    print(json.dumps(result))
finally:
    driver.quit()
