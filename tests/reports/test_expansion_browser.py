"""The merchant expansion page in headless Chromium speaks one language at a time: the zh
view shows no English evidence words, the en view no Chinese evidence text (category names
are data and may be Chinese in both). Run alone with ``pytest -m browser``."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from sharegraph.reports import render_all
from tests.helpers import REPORT_SETTINGS as SETTINGS
from tests.helpers import build_world

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):  # pragma: no cover
    pytest.skip("chromium / chromedriver not installed (make browser)", allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402

EN_WORDS = re.compile(r"customers|also buy|times the average|bought both|would be needed|"
                      r"listed by|significant|suggestive|insufficient|\byes\b|\bno\b|\bsame\b|"
                      r"no data|lift", re.IGNORECASE)
HAN = re.compile(r"[\u4e00-\u9fff]")

_VISIBLE = """
const out = [];
for (const sel of ['#recommendations', '#evidence', '#weak']) {
  for (const cell of document.querySelectorAll(sel + ' tbody td')) { out.push(cell.innerText); }
}
for (const msg of document.querySelectorAll('main .no-data')) { out.push(msg.innerText); }
for (const t of document.querySelectorAll('main svg text')) { out.push(t.textContent); }
return out;"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-expansion')}"):
        options.add_argument(arg)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], set[str]]:
    """Merchant pages of the tiny report world, and every category name (data)."""
    out = tmp_path_factory.mktemp("expansion-browser")
    con = duckdb.connect(str(out / "wh.duckdb"))
    build_world(con)
    render_all(con, SETTINGS, out / "reports")
    names = {r[0] for r in con.execute(
        "SELECT DISTINCT category FROM graph.attributed_orders WHERE category IS NOT NULL").fetchall()}
    con.close()
    return sorted((out / "reports").glob("expansion-*.html")), names


def _texts(drv, page: Path, lang: str, names: set[str]) -> list[str]:
    drv.get(page.resolve().as_uri())
    drv.execute_script("window.sharegraphSetLang(arguments[0]);", lang)
    texts = drv.execute_script(_VISIBLE)
    for name in sorted(names, key=len, reverse=True):  # category names are data, not words
        texts = [t.replace(name, "") for t in texts]
    return [t for t in texts if t.strip()]


def test_expansion_page_is_one_language_at_a_time(driver, pages) -> None:
    files, names = pages
    assert files
    for page in files:
        zh = _texts(driver, page, "zh", names)
        assert any("位共同客户" in t or "普及度" in t for t in zh), (page.name, zh[:5])
        english = [t for t in zh if EN_WORDS.search(t)]
        assert not english, f"{page.name} zh view shows English: {english[:5]}"
        en = _texts(driver, page, "en", names)
        assert any("customers" in t for t in en), (page.name, en[:5])
        chinese = [t for t in en if HAN.search(t)]
        assert not chinese, f"{page.name} en view shows Chinese: {chinese[:5]}"
