"""The playground page in headless Chromium (Debian's `chromium`, driven by Playwright's Python package with
executable_path; no browser download): for a classifier, a tagger (English, and Chinese with an emoji before
the entities), a QA model and an encoder, type, submit, and compare what the page shows with the server's
JSON. Screenshots go to test-artifacts/playground/ (gitignored). About 25 s."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bertkit.serving.config import ServeConfig

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "playground"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    yield page
    page.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def submit(page, text: str) -> None:
    page.fill("#text", text)
    page.click("#run")
    page.wait_for_function(
        "document.querySelector('#output').children.length > 0 || document.querySelector('#error').textContent"
    )
    assert page.text_content("#error") == ""


def test_classifier_bars(classifier_dir, serve, http, page):
    text = "a film of quiet beauty"
    with serve(ServeConfig(model=str(classifier_dir))) as url, http(url) as c:
        want = c.post("/predict", json={"inputs": text}).json()
        page.goto(url)
        page.wait_for_selector("#model:has-text('classification')")
        submit(page, text)
        rows = page.locator(".bars .row")
        assert rows.count() == len(want) == 2
        for k, item in enumerate(want):
            row = rows.nth(k)
            assert row.get_attribute("data-label") == item["label"]
            assert float(row.get_attribute("data-score")) == pytest.approx(item["score"])
            assert row.locator(".score").text_content() == f"{item['score']:.3f}"
        shot(page, "classifier")


@pytest.mark.parametrize(
    "name,text",
    [
        ("tagger-en", "John Smith met Mary Jones in Paris and London last year"),
        ("tagger-zh", "😀😀 张三住在北京。John Smith lives in Paris 🙂 with 𠀋 Mary"),
    ],
)
def test_tagger_spans_with_utf16_offsets(ner_dir, serve, http, page, name, text):
    with serve(ServeConfig(model=str(ner_dir), max_length=64)) as url, http(url) as c:
        entities = c.post("/", json={"inputs": text, "parameters": {"aggregation_strategy": "simple"}}).json()
        assert any(e["start"] > 2 for e in entities), "the fixture should tag something after the emoji"
        page.goto(url)
        page.wait_for_selector("#model:has-text('tagging')")
        submit(page, text)
        marks = page.locator("mark.entity")
        assert marks.count() == len(entities)
        for k, e in enumerate(entities):
            mark = marks.nth(k)
            assert mark.get_attribute("data-label") == e["entity_group"]
            assert (int(mark.get_attribute("data-start")), int(mark.get_attribute("data-end"))) == (
                e["start"],
                e["end"],
            )
            assert mark.locator(".text").text_content() == text[e["start"] : e["end"]]  # Python code points
            assert mark.locator(".badge").text_content() == e["entity_group"]
        assert page.locator(".entities").text_content().startswith(text[:2])  # nothing dropped or moved
        shot(page, name)


def test_qa_answer_highlighted(qa_dir, serve, http, page):
    context = "😀 My name is Wolfgang and I live in Berlin with my cat"
    question = "Where do I live?"
    with serve(ServeConfig(model=str(qa_dir))) as url, http(url) as c:
        want = c.post("/", json={"inputs": {"question": question, "context": context}}).json()
        page.goto(url)
        page.wait_for_selector("#model:has-text('qa')")
        page.fill("#question", question)
        submit(page, context)
        mark = page.locator("mark.answer")
        assert mark.text_content() == want["answer"] == context[want["start"] : want["end"]]
        assert int(mark.get_attribute("data-start")) == want["start"]
        shot(page, "qa")


def test_encoder_heat_map_tokens_info_and_api_key(encoder_dir, serve, http, page):
    lines = ["the cat sat on the mat", "a cat was sitting on a mat", "stock markets fell"]
    with serve(ServeConfig(model=str(encoder_dir), api_key="s3cret")) as url, http(url, "s3cret") as c:
        vectors = np.array(c.post("/embed", json={"inputs": lines}).json())
        tokens = c.post("/tokenize", json={"inputs": lines[0]}).json()[0]
        page.goto(url)
        page.wait_for_selector("#key-box:not([hidden])")
        page.fill("#api-key", "s3cret")
        page.press("#api-key", "Enter")
        page.wait_for_selector("#model:has-text('encoder')")
        submit(page, "\n".join(lines))
        cells = page.locator("table.heat td")
        assert cells.count() == 9
        cosine = vectors @ vectors.T
        for k in range(9):
            cell = cells.nth(k)
            i, j = int(cell.get_attribute("data-i")), int(cell.get_attribute("data-j"))
            assert float(cell.get_attribute("data-cos")) == pytest.approx(cosine[i, j], abs=1e-5)
        page.fill("#text", lines[0])
        page.click("#run-tokenize")
        page.wait_for_selector(".pieces span.piece")
        pieces = page.locator(".pieces span.piece")
        assert pieces.count() == len(tokens)
        assert [int(pieces.nth(k).get_attribute("data-id")) for k in range(len(tokens))] == [
            t["id"] for t in tokens
        ]
        assert '"max_input_length"' in page.text_content("#info")
        shot(page, "encoder")


def test_no_playground(encoder_dir, serve, http):
    with serve(ServeConfig(model=str(encoder_dir), playground=False)) as url, http(url) as c:
        assert c.get("/").json() == {"status": "ok"}
