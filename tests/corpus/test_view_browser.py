"""`landscape-av view` in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Each test records every request the page makes, its console errors and uncaught exceptions, and
asserts that no request left 127.0.0.1 and nothing went wrong. Where Chromium or Playwright is
missing the tests skip, saying so, except when LANDSCAPE_AV_REQUIRE_CHROMIUM=1 (CI, which installs
both), where they fail. LANDSCAPE_AV_SCREENSHOT=1 rewrites the README's screenshot docs/view.png.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from landscape_av.corpus import Corpus
from landscape_av.corpus.manifests import write_manifest
from landscape_av.corpus.view import CorpusView, ExportOptions, export_view

from .conftest import serve_view
from .test_view import _members

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("LANDSCAPE_AV_CHROMIUM", "/usr/bin/chromium")
OFFLINE_ARGS = [  # Playwright adds --headless and a fresh temporary --user-data-dir itself
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator:
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "Playwright is not installed (pip install playwright; never `playwright install`)"
    if reason is None and not Path(CHROMIUM).is_file():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium, as .ci/run does)"
    if reason:
        if os.environ.get("LANDSCAPE_AV_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A fresh browser context and page that record every request, response and error."""

    def __init__(self, browser, allowed: str, **context) -> None:
        self.allowed = allowed
        self.context = browser.new_context(service_workers="block", **context)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.responses: list[tuple[str, int, dict]] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("response", lambda r: self.responses.append((r.url, r.status, r.headers)))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None,
        )

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.wait("() => document.body.dataset.ready === 'true'", what="the page to load")

    def wait(self, script: str, arg=None, what: str = "", timeout: float = 30.0):
        """Poll `script` (a function) until it returns something true; its value. (The page's
        Content-Security-Policy forbids eval, so Playwright's wait_for_function cannot run.)"""
        deadline = time.monotonic() + timeout
        while True:
            value = self.page.evaluate(script, arg)
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"waited {timeout:g} s for {what or script}")
            time.sleep(0.05)

    def check_clean(self) -> None:
        """No console error, no uncaught exception, no request that left `allowed`."""
        assert self.errors == []
        away = [
            u for u in self.requests if not u.startswith(self.allowed) and not u.startswith("data:")
        ]
        assert away == []
        assert self.requests

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page_of(browser) -> Iterator[Callable[..., Page]]:
    pages: list[Page] = []

    def make(allowed: str, **context) -> Page:
        pages.append(Page(browser, allowed, **context))
        return pages[-1]

    yield make
    for page in pages:
        page.close()


@pytest.fixture(scope="module")
def served(demo_corpus: Path):
    with serve_view(demo_corpus) as server:
        yield server


SHOW_ALL_SECTIONS = """async () => {
    for (const section of document.querySelectorAll('section.group')) {
        section.scrollIntoView();
        await new Promise((done) => setTimeout(done, 50));
    }
    window.scrollTo(0, 0);
}"""

SHOWN = """() => [...document.querySelectorAll('section.group')].map((s) => ({
    class: s.dataset.class, split: s.dataset.split, clips: Number(s.dataset.clips),
    keys: [...s.querySelectorAll('.clip')].map((c) => c.dataset.key),
    images: [...s.querySelectorAll('.clip img')].map((i) => [i.complete, i.naturalWidth, i.naturalHeight]),
}))"""


def test_every_clip_and_failure_is_on_the_page(
    page_of, served, demo_corpus: Path, manifests, tmp_path: Path
) -> None:
    p = page_of(served.url, viewport={"width": 1100, "height": 900})
    p.open(served.url)
    p.page.evaluate(SHOW_ALL_SECTIONS)
    clips = manifests["clips"]
    p.wait(
        "(n) => [...document.querySelectorAll('.clip img')].filter((i) => i.complete && i.naturalWidth > 0).length === n",
        len(clips),
        what="every thumbnail to load",
    )
    shown = p.page.evaluate(SHOWN)
    members = _members(demo_corpus)
    for cls in clips["class"].unique():  # every class shows as many thumbnails as listed
        sections = [s for s in shown if s["class"] == cls]
        listed = clips[clips["class"] == cls]
        assert sum(len(s["keys"]) for s in sections) == len(listed) > 0
        assert sorted(k for s in sections for k in s["keys"]) == sorted(listed["key"])
        for section in sections:
            in_split = listed[listed["split"] == section["split"]]
            assert sorted(section["keys"]) == sorted(in_split["key"])
            for key, (_, width, height) in zip(section["keys"], section["images"], strict=True):
                thumb = Image.open(io.BytesIO(members[(key, "jpg")]))
                assert (width, height) == thumb.size  # the clip's own jpg member
    rows = p.page.evaluate(
        """() => [...document.querySelectorAll('#failures-table tbody tr')].map((r) => ({
            cells: [...r.cells].map((c) => c.textContent), href: r.querySelector('a')?.href }))"""
    )
    failures = manifests["failures"].to_dict("records")
    assert len(rows) == len(failures) > 0
    for row, failure in zip(rows, failures, strict=True):
        assert row["cells"][:5] == [
            failure[k] for k in ("source_id", "class", "stage", "reason", "detail")
        ]
        assert row["href"] == failure["url"]
    totals = p.page.evaluate("() => document.querySelector('#totals').textContent")
    assert f"clips{len(clips)}" in totals
    figures = p.page.evaluate("() => [...document.querySelectorAll('#figures img')].length")
    assert figures == len(list((demo_corpus / "figures").glob("*.png")))
    shot = tmp_path / "view.png"
    p.page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1100
    if os.environ.get("LANDSCAPE_AV_SCREENSHOT") == "1":
        (REPO / "docs" / "view.png").write_bytes(shot.read_bytes())
    p.check_clean()


def test_a_clicked_clip_plays_with_its_sound_and_seeks(
    page_of, served, demo_corpus: Path, manifests
) -> None:
    p = page_of(served.url)
    p.open(served.url)
    clip = manifests["clips"].iloc[0]
    key = clip["key"]
    p.page.evaluate(SHOW_ALL_SECTIONS)
    p.page.click(f'.clip[data-key="{key}"]')
    video = "document.querySelector('#player-video')"
    p.wait(f"() => {video}.currentTime > 1.0", what="the video to play 1 s")
    state = p.page.evaluate(
        f"() => [{video}.paused, {video}.videoWidth, {video}.videoHeight, {video}.webkitAudioDecodedByteCount]"
    )
    assert state[:3] == [False, clip["width"], clip["height"]]
    assert state[3] > 0  # its AAC track was decoded
    mp4_url = f"{served.url}media/{key}.mp4"
    statuses = {status for url, status, _ in p.responses if url == mp4_url}
    assert statuses and statuses <= {200, 206} and 206 in statuses  # the browser asked by range
    p.page.evaluate(f"() => {{ {video}.currentTime = 7.5; }}")
    p.wait(f"() => {video}.currentTime > 8.0 && !{video}.seeking", what="playing on after a seek")
    mp4 = _members(demo_corpus)[(key, "mp4")]
    got = p.page.evaluate(
        """async (url) => {
            const r = await fetch(url, {headers: {Range: 'bytes=20000-29999'}});
            const bytes = new Uint8Array(await r.arrayBuffer());
            return [r.status, r.headers.get('Content-Range'), btoa(String.fromCharCode(...bytes))];
        }""",
        mp4_url,
    )
    assert got[:2] == [206, f"bytes 20000-29999/{len(mp4)}"]
    assert base64.b64decode(got[2]) == mp4[20000:30000]
    p.page.click("#player-actions button")  # the flac, on request
    p.wait(
        "() => { const a = document.querySelector('#player-audio audio'); return a && a.currentTime > 0.5; }",
        what="the flac to play",
    )
    assert p.page.evaluate(f"() => {video}.paused")
    assert any(url == f"{served.url}media/{key}.flac" for url in p.requests)
    p.page.keyboard.press("Escape")
    p.wait("() => !document.querySelector('#player').open", what="the player to close")
    p.check_clean()


def test_filters_select_by_class_split_and_source(page_of, served, manifests) -> None:
    p = page_of(served.url)
    p.open(served.url)
    clips = manifests["clips"]
    p.page.select_option("#filter-class", "raining")
    p.wait(
        "() => [...document.querySelectorAll('section.group')].every((s) => s.dataset.class === 'raining')"
    )
    p.page.evaluate(SHOW_ALL_SECTIONS)
    raining = clips[clips["class"] == "raining"]
    p.wait(
        "(n) => document.querySelectorAll('.clip').length === n", len(raining), what="raining clips"
    )
    p.page.select_option("#filter-class", "")
    p.page.fill("#filter-q", "STORM_T")
    wanted = clips[clips["source_id"].str.contains("storm_t", case=False)]
    p.wait(
        "(n) => document.querySelectorAll('section.group').length === 1 && document.querySelectorAll('.clip').length === n",
        len(wanted),
        what="the search to narrow the clips",
    )
    keys = p.page.evaluate(
        "() => [...document.querySelectorAll('.clip')].map((c) => c.dataset.key)"
    )
    assert sorted(keys) == sorted(wanted["key"])
    assert (
        p.page.evaluate("() => document.querySelector('#match-count').textContent")
        == f"{len(wanted)} clip"
    )
    p.check_clean()


def test_hostile_text_is_shown_as_text(page_of, corpus_copy: Path) -> None:
    corpus = Corpus(corpus_copy)
    sources = corpus.manifest("sources").to_dict("records")
    for row in sources:
        row |= {"attribution": f"by {HOSTILE}", "license": f"CC0 {HOSTILE}"}
    write_manifest(corpus_copy, "sources", sources)
    failures = corpus.manifest("failures").to_dict("records")
    failures[0] |= {"detail": f"failed {HOSTILE}", "url": "javascript:window.__pwned=3"}
    failures[1] |= {"source_id": HOSTILE}
    write_manifest(corpus_copy, "failures", failures)
    clips = corpus.manifest("clips").to_dict("records")
    clips[-1]["key"] = f"k{HOSTILE}"
    write_manifest(corpus_copy, "clips", clips)
    with serve_view(corpus_copy) as server:
        p = page_of(server.url)
        p.open(server.url)
        p.page.evaluate(SHOW_ALL_SECTIONS)
        p.wait("(n) => document.querySelectorAll('.clip').length === n", len(clips))
        cells = p.page.evaluate(
            "() => [...document.querySelectorAll('#failures-table tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))"
        )
        assert cells[0][4] == f"failed {HOSTILE}" and cells[1][0] == HOSTILE
        assert cells[0][5] == "javascript:window.__pwned=3"  # shown, not a link
        assert (
            p.page.evaluate("() => document.querySelectorAll('a[href^=\"javascript:\"]').length")
            == 0
        )
        problems = p.page.evaluate("() => document.querySelector('#problems').textContent")
        assert f"key 'k{HOSTILE}' is not a sample key" in problems
        hostile_card = p.page.evaluate(
            "(key) => [...document.querySelectorAll('.clip')].filter((c) => c.dataset.key === key).length",
            f"k{HOSTILE}",
        )
        assert hostile_card == 1
        p.page.click(".clip >> nth=0")
        fields = p.page.evaluate(
            "() => Object.fromEntries([...document.querySelectorAll('#player-fields tr')].map((r) => [r.cells[0].textContent, r.cells[1].textContent]))"
        )
        assert fields["source attribution"] == f"by {HOSTILE}"
        assert fields["source license"] == f"CC0 {HOSTILE}"
        injected = p.page.evaluate(
            """() => [window.__pwned, document.querySelectorAll('script').length,
                      document.querySelectorAll('img[src="x"], img[onerror]').length]"""
        )
        assert injected == [None, 1, 0]  # nothing ran, no element came from the data
        p.page.keyboard.press("Escape")
        p.check_clean()


def test_a_phone_gets_one_readable_column(page_of, served) -> None:
    p = page_of(served.url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    p.open(served.url)
    p.page.evaluate(SHOW_ALL_SECTIONS)
    p.wait("() => document.querySelectorAll('.clip').length > 1")
    layout = p.page.evaluate(
        """() => {
            const cards = [...document.querySelectorAll('section.group')[0].querySelectorAll('.clip')];
            const boxes = cards.map((c) => c.getBoundingClientRect());
            return {scroll: document.documentElement.scrollWidth, width: window.innerWidth,
                    perRow: boxes.filter((b) => Math.abs(b.top - boxes[0].top) < 2).length,
                    cardWidth: boxes[0].width, font: parseFloat(getComputedStyle(cards[0]).fontSize)};
        }"""
    )
    assert layout["scroll"] <= layout["width"] == 390  # nothing runs off the side
    assert layout["perRow"] == 2 and layout["cardWidth"] > 150
    p.page.click(".clip >> nth=0")
    box = p.page.evaluate("() => document.querySelector('#player').getBoundingClientRect().width")
    assert box == 390  # the player takes the whole screen
    p.check_clean()


def _tile():
    spec = importlib.util.spec_from_file_location("view_speed", REPO / "bench" / "view_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.tile_corpus


def test_pages_of_a_big_section(page_of, demo_corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "tiled"
    _tile()(demo_corpus, folder, clips=6 * 60, per_shard=100, members=("jpg", "json"))
    clips = Corpus(folder).manifest("clips")
    with serve_view(folder) as server:
        p = page_of(server.url, viewport={"width": 1280, "height": 900})
        p.open(server.url)
        first = p.page.evaluate("() => document.querySelector('section.group')")
        assert first is not None
        group = p.page.evaluate(
            "() => { const s = document.querySelector('section.group'); return [s.dataset.class, s.dataset.split, Number(s.dataset.clips)]; }"
        )
        listed = clips[(clips["class"] == group[0]) & (clips["split"] == group[1])]
        assert group[2] == len(listed) > 48
        keys = "() => [...document.querySelector('section.group').querySelectorAll('.clip')].map((c) => c.dataset.key)"
        page1 = p.wait(f"() => {{ const k = ({keys})(); return k.length ? k : null; }}")
        assert len(page1) == 48
        loaded = len([u for u in p.requests if "/media/" in u])
        assert loaded <= 2 * 48  # a page, not every thumbnail of the corpus
        sections = p.page.evaluate("() => document.querySelectorAll('section.group').length")
        asked = [u for u in p.requests if "/api/clips" in u]
        assert 1 <= len(asked) < sections == 4  # the sections far from the screen wait
        p.page.click("section.group .pager button >> text=next")
        page2 = p.wait(
            f"() => {{ const k = ({keys})(); return k[0] !== {page1[0]!r} ? k : null; }}"
        )
        expected = CorpusView(Corpus(folder), warn=lambda line: None).page(
            *group[:2], offset=48, limit=48
        )
        assert page2 == [c["key"] for c in expected["clips"]]
        pager = p.page.evaluate(
            "() => document.querySelector('section.group .pager span').textContent"
        )
        assert pager == f"49–96 of {len(listed)}"
        p.check_clean()


def test_the_static_export_opens_without_a_server(
    page_of, demo_corpus: Path, manifests, tmp_path: Path
) -> None:
    view = CorpusView(Corpus(demo_corpus), warn=lambda line: None)
    dest = tmp_path / "export"
    export_view(view, dest, ExportOptions(preview_seconds=3))
    url = (dest / "index.html").as_uri()
    p = page_of(dest.as_uri())
    p.open(url)
    p.page.evaluate(SHOW_ALL_SECTIONS)
    clips = manifests["clips"]
    p.wait(
        "(n) => [...document.querySelectorAll('.clip img')].filter((i) => i.complete && i.naturalWidth > 0).length === n",
        len(clips),
        what="every exported thumbnail",
    )
    p.page.fill("#filter-q", "raining_t")  # the export filters in the page, as the API does
    wanted = [c["key"] for c in view.select(query="raining_t")]
    p.wait("(n) => document.querySelectorAll('.clip').length === n", len(wanted))
    p.page.click(".clip >> nth=0")
    video = "document.querySelector('#player-video')"
    p.wait(f"() => {video}.currentTime > 1.0", what="the preview to play")
    assert p.page.evaluate(f"() => {video}.webkitAudioDecodedByteCount") > 0
    rows = p.page.evaluate("() => document.querySelectorAll('#failures-table tbody tr').length")
    assert rows == len(manifests["failures"])
    p.check_clean()
