"""The web page in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``, which
``.ci/run`` installs when missing) driven by Selenium against ``qaembed serve``'s app on loopback.

It loads the page, types a question, checks that the results render with votes, links and
attribution, that the side-by-side view shows a second index, that answer text holding HTML is shown
as text (never run), and saves a screenshot to ``test-output/serve_page.png``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from index_helpers import make_records, running_server, write_dataset

from qaembed.records import Answer, Author, Provenance, QARecord

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[2] / "test-output" / "serve_page.png"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)"
)

HOSTILE = 'Keep it cold. <img src=x onerror="document.body.dataset.pwned=1"><script>document.body.dataset.pwned=2</script>'


@pytest.fixture(scope="module")
def indexes(tiny_model_dir, other_model_dir, tmp_path_factory):
    from qaembed.index import build_index, load_index

    records = make_records("s", 12)
    records.append(QARecord(
        id="s:hostile", title="How long does opened beer keep in the fridge?", body="", answers=[Answer(
            id="s:hostile:0", text=HOSTILE, score=42, accepted=True,
            provenance=Provenance(source="test", site="beer.stackexchange.com", url="javascript:alert(1)",
                                  author=Author(id="7", name="<b>mallory</b>", url="javascript:alert(2)"),
                                  license="CC BY-SA 4.0"),
        )],
        provenance=Provenance(source="test", site="beer.stackexchange.com", url="https://beer.stackexchange.com/q/1"),
    ))
    data = write_dataset(tmp_path_factory.mktemp("browser_data"), records)
    root = tmp_path_factory.mktemp("browser_indexes")
    build_index(str(tiny_model_dir), data, root / "base", progress=False)
    build_index(str(other_model_dir), data, root / "tuned", progress=False)
    return {"base": load_index(root / "base"), "tuned": load_index(root / "tuned")}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)  # no driver download
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def test_page_searches_compares_two_indexes_and_never_runs_answer_html(indexes, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from qaembed.serve import ServerLimits, create_app

    wait = WebDriverWait(browser, 120)  # waits for a state; generous for a loaded machine
    with running_server(create_app(indexes, ServerLimits(max_k=30, max_query_chars=60))) as url:
        browser.get(url + "/")
        wait.until(lambda driver: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        assert browser.title == "qaembed search"
        choices = [option.text for option in Select(browser.find_element(By.ID, "index-a")).options]
        assert choices == ["base (25 answers)", "tuned (25 answers)"]
        assert browser.find_element(By.ID, "k").get_attribute("max") == "30"  # the server's limit
        assert Select(browser.find_element(By.ID, "index-b")).first_selected_option.get_attribute("value") == "tuned"

        k = browser.find_element(By.ID, "k")
        k.clear()
        k.send_keys("25")
        browser.find_element(By.ID, "query").send_keys("How long does opened beer keep in the fridge?")
        browser.find_element(By.ID, "search").click()
        wait.until(lambda driver: driver.find_element(By.TAG_NAME, "body").get_attribute("data-searched") == "1")

        left = browser.find_elements(By.CSS_SELECTOR, "#results-a .hit")
        right = browser.find_elements(By.CSS_SELECTOR, "#results-b .hit")
        assert len(left) == len(right) == 25
        assert browser.find_element(By.ID, "column-b").is_displayed()
        assert browser.find_element(By.ID, "title-a").text.startswith("base — ")
        assert browser.find_element(By.ID, "title-b").text.startswith("tuned — ")
        assert "25 answers from each index" in browser.find_element(By.ID, "status").text
        assert not browser.find_element(By.ID, "error").is_displayed()

        # same ranks as the API, with votes, links and attribution
        [expected] = indexes["base"].search(["How long does opened beer keep in the fridge?"], k=25)
        assert [hit.get_attribute("data-id") for hit in left] == [hit.id for hit in expected.hits]
        normal = next(hit for hit in left if hit.get_attribute("data-id") == "s:3:0")
        assert "votes" in normal.find_element(By.CLASS_NAME, "votes").text
        assert normal.find_element(By.CSS_SELECTOR, ".title a").get_attribute("href") == "https://beer.stackexchange.com/questions/s3"
        assert normal.find_element(By.CSS_SELECTOR, ".attribution a").text == "brewer3"
        assert "CC BY-SA 4.0" in normal.find_element(By.CLASS_NAME, "attribution").text
        assert normal.find_element(By.CLASS_NAME, "other").text.endswith("in the other")

        # the hostile answer: its HTML shown as text, its javascript: links not made links
        hostile = next(hit for hit in left if hit.get_attribute("data-id") == "s:hostile:0")
        assert hostile.find_element(By.CLASS_NAME, "text").text == HOSTILE
        assert "accepted" in hostile.find_element(By.CLASS_NAME, "accepted").text
        assert "<b>mallory</b>" in hostile.find_element(By.CLASS_NAME, "attribution").text
        assert all(not (link.get_attribute("href") or "").startswith("javascript:")
                   for link in hostile.find_elements(By.TAG_NAME, "a"))
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-pwned") is None
        assert not browser.find_elements(By.CSS_SELECTOR, "#results-a img, #results-a script")

        SCREENSHOT.parent.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(SCREENSHOT))
        print(f"screenshot: {SCREENSHOT}")

        # one index only: the second column goes away; an error from the API is shown, not swallowed
        Select(browser.find_element(By.ID, "index-b")).select_by_value("")
        question = browser.find_element(By.ID, "query")
        question.send_keys(" and what about the freezer, or a cellar?")
        browser.find_element(By.ID, "search").click()
        error = wait.until(ready.visibility_of_element_located((By.ID, "error")))
        assert "at most 60" in error.text
        question.clear()
        question.send_keys("cork")
        k.clear()
        k.send_keys("3")
        browser.find_element(By.ID, "search").click()
        wait.until(lambda driver: driver.find_element(By.TAG_NAME, "body").get_attribute("data-searched") == "2")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#results-a .hit")) == 3
        assert not browser.find_element(By.ID, "column-b").is_displayed()
        assert not browser.find_element(By.ID, "error").is_displayed()


def test_the_page_searches_with_its_default_answers_on_a_server_whose_max_k_is_lower(indexes, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from qaembed.serve import ServerLimits, create_app

    wait = WebDriverWait(browser, 120)
    with running_server(create_app({"base": indexes["base"]}, ServerLimits(max_k=3))) as url:
        browser.get(url + "/")
        wait.until(lambda driver: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        assert browser.find_element(By.ID, "k").get_attribute("value") == "3"  # was 5: over max, the form refused
        browser.find_element(By.ID, "query").send_keys("cork")
        browser.find_element(By.ID, "search").click()
        wait.until(lambda driver: driver.find_element(By.TAG_NAME, "body").get_attribute("data-searched") == "1")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#results-a .hit")) == 3
