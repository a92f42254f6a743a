"""Headless Debian Chromium through chromedriver, as the browser tests start it."""

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def open_chromium(window_size=None):
    """A headless Chromium session (Debian's /usr/bin/chromium), logging the browser console."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    arguments = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
    if window_size:
        arguments.append(f"--window-size={window_size}")
    for argument in arguments:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
