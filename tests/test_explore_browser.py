"""The explorer in a real browser: `dina explore` started as a command on a free loopback
port, Debian's Chromium driven by Selenium through the system chromedriver (the Makefile's
set-up installs both), clicked through leaderboard -> sample -> compare, with screenshots
saved in the test's tmp folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from conftest import make_bucket
from gcs_server import free_port
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from dina_datasets.analysis import scores as score_table

CONFIGS = ["ResNet50-Saliency", "ResNet50-Rise", "DinoV2-Rise"]
WAIT = 60


def chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail("Debian's chromium and chromium-driver are missing: run the Makefile's "
                    "set-up (apt-get install -y chromium chromium-driver, as root)")
    return browser, driver


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(driver, url, folder for screenshots) of `dina explore` over a tiny bucket."""
    browser, driver_path = chromium()
    tmp = tmp_path_factory.mktemp("browser")
    root, images = str(tmp / "bucket"), tmp / "images"
    make_bucket(root, CONFIGS, n=5, keys=True)
    images.mkdir()
    yy, xx = np.mgrid[0:60, 0:80]
    for i in range(5):  # smooth, distinct pictures
        picture = np.stack([xx * 3 + 40 * i, yy * 4, 255 - xx * 3], -1) % 256
        Image.fromarray(picture.astype(np.uint8)).save(images / f"img_{i:03d}.png")
    scores = str(tmp / "scores.parquet")
    score_table.build(root, scores)
    port = free_port()
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - the server writes to it until the end
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys; from dina_datasets.cli import main; "
         "sys.exit(main())", "explore", "--data-url", root, "--images", str(images),
         "--scores", scores, "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="0"))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail("dina explore did not start: "
                            + (tmp / "server.log").read_text()[-2000:])
            time.sleep(0.5)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1400,1800", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver, url, tmp
    driver.quit()
    server.terminate()
    server.wait(timeout=30)
    log.close()


def wait_text(driver, css: str, words: str) -> str:
    WebDriverWait(driver, WAIT).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css),
                                                                        words))
    return driver.find_element(By.CSS_SELECTOR, css).text


def choose(driver, elem_id: str, value: str) -> None:
    """Type a value into a dropdown and confirm it."""
    box = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input")
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(value, Keys.ENTER)


def tab(driver, name: str) -> None:
    button = WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable(
        (By.XPATH, f"//button[@role='tab' and normalize-space()='{name}']")))
    button.click()


def test_leaderboard_sample_compare_in_chromium(page):
    driver, url, tmp = page
    driver.get(url)
    # the leaderboard is filled on load: the opening (model, metric), ResNet50 (the only
    # model with two explainers to tell apart), ranked
    table = wait_text(driver, "#lb-table", "Saliency")
    assert "explainer" in table and "Rise" in table
    choose(driver, "lb-model", "DinoV2")
    driver.find_element(By.CSS_SELECTOR, "#lb-go").click()
    WebDriverWait(driver, WAIT).until(  # DinoV2 has Rise only
        lambda d: "Saliency" not in d.find_element(By.CSS_SELECTOR, "#lb-table").text)
    assert "Rise" in driver.find_element(By.CSS_SELECTOR, "#lb-table").text
    driver.save_screenshot(str(tmp / "1-leaderboard.png"))

    tab(driver, "Sample")
    choose(driver, "s-name", "ResNet50")
    driver.find_element(By.CSS_SELECTOR, "#s-go").click()
    keys = wait_text(driver, "#s-keys", "record")
    assert "img_000" in keys and "label" in keys
    assert "Insertion" in wait_text(driver, "#s-scores", "ResNet50-Rise")
    gallery = wait_text(driver, "#s-maps", "ResNet50-Saliency")
    assert "ResNet50-Rise" in gallery and "Insertion" in gallery
    maps = driver.find_elements(By.CSS_SELECTOR, "#s-maps img")
    assert len(maps) >= 2
    assert all(driver.execute_script("return arguments[0].naturalWidth", m) > 100
               for m in maps)  # the drawn maps arrived, not broken images
    driver.save_screenshot(str(tmp / "2-sample.png"))

    tab(driver, "Compare")
    driver.find_element(By.CSS_SELECTOR, "#c-go").click()
    rows = wait_text(driver, "#c-table", "img_00")
    assert "score_a" in rows and "disagreement" in rows
    driver.save_screenshot(str(tmp / "3-compare.png"))
    # a click on a disagreeing image opens it in Sample
    cell = next(c for c in driver.find_elements(
        By.XPATH, "//*[@id='c-table']//span[contains(text(), 'img_00')]") if c.is_displayed())
    chosen = cell.text.strip()
    ActionChains(driver).move_to_element(cell).click().perform()
    keys = wait_text(driver, "#s-keys", chosen)
    assert "ResNet50" in keys  # config A's model (the opening model's first config)
    driver.save_screenshot(str(tmp / "4-sample-from-compare.png"))

    # bad input: a message in the page, and the page still works
    tab(driver, "Sample")
    box = driver.find_element(By.CSS_SELECTOR, "#s-index input")
    box.clear()
    box.send_keys("42")
    driver.find_element(By.CSS_SELECTOR, "#s-go").click()
    WebDriverWait(driver, WAIT).until(
        lambda d: "index 42 is outside" in d.find_element(By.TAG_NAME, "body").text)
    assert "Traceback" not in driver.find_element(By.TAG_NAME, "body").text
    driver.save_screenshot(str(tmp / "5-bad-index.png"))
    for name in sorted(os.listdir(tmp)):
        if name.endswith(".png"):
            print("screenshot:", tmp / name)
