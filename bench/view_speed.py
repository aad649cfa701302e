"""`landscape-av view` on a 10,000-clip corpus: the first page, a thumbnail, and what it reads.

    python bench/view_speed.py                      # builds the 9-class demo at 128x72 first
    python bench/view_speed.py --demo landscape-av --clips 10000 --per-shard 1000

The corpus is made by copying the samples of a demo corpus (all members, as they are) into more
shards, written by the build's own shard writer, with manifests to match (`tile_corpus`); it lives
in a temporary folder and is removed afterwards (about 0.75 MB a clip for the 128x72 demo: 7.5 GB
for 10,000). The viewer then runs as `landscape-av view` in a child process, and this script asks
it what a browser asks for, timing:

- start: from starting the command to its address printed (manifests, statistics read once);
- first page: the HTML, its script and style sheet, /api/summary, /api/groups, /api/failures and
  the first page of clips of the first two class sections, one after another (cold, then the
  median of repeats);
- a thumbnail: the last clip of a shard not read yet (its headers are indexed first), then another
  of the same shard; with the bytes the server process read for it (`rchar` of /proc/PID/io), set
  against the shard's size, and against the baseline: the same jpg found by scanning the shard
  with the streaming reader (`read_shard`, what decoding the tar by hand does), in this process.

With Debian's chromium and Playwright installed, it also times the page in headless Chromium, from
navigation to the first section's thumbnails all loaded. The files were just written, so they are
in the page cache: the scan's time is the memory's, not the disk's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.table import Table

from landscape_av.corpus import Corpus, read_shard
from landscape_av.corpus.manifests import write_manifest
from landscape_av.pipeline.shard import SampleFiles, plan_shards, write_shard
from landscape_av.schema import DATA_DIR, MEMBERS, sample_key

CLI = [sys.executable, "-c", "from landscape_av.cli import main; main()"]
DEMO_ARGS = ["--demo", "--size", "128x72", "--min-size", "128x72", "--max-clips", "1"]


def tile_corpus(
    src: Path, dest: Path, clips: int, per_shard: int = 1000, members: tuple[str, ...] = MEMBERS
) -> None:
    """A corpus in `dest` of `clips` samples copied round-robin from the samples of the corpus in
    `src` (their `members`, bytes as they are), each under a new source id (`<source>-t<n>`) with
    its json, manifests, card and figures to match; `per_shard` samples per shard."""
    corpus = Corpus(src)
    templates = [s for split in ("train", "test") for s in corpus.samples(split)]
    clip_rows = {r["key"]: r for r in corpus.manifest("clips").to_dict("records")}
    source_rows = {r["source_id"]: r for r in corpus.manifest("sources").to_dict("records")}
    work = dest / ".work" / "tile"
    for i, template in enumerate(templates):
        for ext in members:
            if ext != "json":
                (work / f"t{i}").mkdir(parents=True, exist_ok=True)
                (work / f"t{i}" / ext).write_bytes(template.members[ext])
    samples, new_clips, new_sources = [], [], []
    for n in range(clips):
        t = n % len(templates)
        meta = templates[t].meta()
        source_id = f"{meta['source_id']}-t{n:06d}"
        key = sample_key(source_id, meta["clip_index"])
        meta |= {"key": key, "source_id": source_id, "url": f"{meta['url']}#t{n}"}
        files = {ext: work / f"t{t}" / ext for ext in members if ext != "json"}
        if "json" in members:
            text = json.dumps(meta, sort_keys=True).encode()
            files["json"] = work / "json" / f"{key}.json"
            files["json"].parent.mkdir(exist_ok=True)
            files["json"].write_bytes(text)
        samples.append(SampleFiles(key, meta["split"], files))
        row = clip_rows[templates[t].key]
        sha = hashlib.sha256(files["json"].read_bytes()).hexdigest() if "json" in files else ""
        new_clips.append(row | {"key": key, "source_id": source_id, "sha256_json": sha})
        source = source_rows[row["source_id"]]
        new_sources.append(source | {"source_id": source_id, "url": meta["url"], "num_clips": 1})
    samples.sort(key=lambda s: (s.split != "train", s.key))
    plans = plan_shards(samples, max_bytes=1 << 40, max_samples=per_shard)
    (dest / DATA_DIR).mkdir(parents=True, exist_ok=True)
    shard_rows, shard_of = [], {}
    for plan in plans:
        size, sha = write_shard(plan, dest / DATA_DIR / plan.name)
        keys = [s.key for s in plan.samples]
        shard_of |= {k: plan.name for k in keys}
        shard_rows.append(
            {"shard": plan.name, "split": plan.split, "index": plan.index, "samples": len(keys)}
            | {"bytes": size, "sha256": sha, "first_key": keys[0], "last_key": keys[-1]}
        )
    sizes = {s.key: sum(p.stat().st_size for p in s.members.values()) for s in samples}
    new_clips = [r | {"shard": shard_of[r["key"]], "bytes": sizes[r["key"]]} for r in new_clips]
    new_clips.sort(key=lambda r: (r["split"] != "train", r["key"]))
    write_manifest(dest, "clips", new_clips)
    write_manifest(dest, "sources", new_sources)
    write_manifest(dest, "shards", shard_rows)
    write_manifest(dest, "failures", corpus.manifest("failures").to_dict("records"))
    for name in ("README.md", "build.json"):
        shutil.copyfile(src / name, dest / name)
    shutil.copytree(src / "figures", dest / "figures")
    shutil.rmtree(dest / ".work")


def rchar(pid: int | str = "self") -> int:
    """Bytes process `pid` has read through read(2) and alike so far (Linux)."""
    return int(re.search(r"rchar: (\d+)", Path(f"/proc/{pid}/io").read_text()).group(1))


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def first_page(base: str) -> float:
    """Seconds for what the page asks for before its thumbnails, one request after another."""
    start = time.perf_counter()
    for path in ("", "static/view.css", "static/view.js", "api/summary", "api/failures"):
        get(base + path)
    groups = json.loads(get(f"{base}api/groups"))["groups"]
    for g in groups[:2]:
        query = urllib.parse.urlencode({"class": g["class"], "split": g["split"], "limit": 48})
        get(f"{base}api/clips?{query}")
    return time.perf_counter() - start


def browser_time(base: str, executable: str = "/usr/bin/chromium") -> tuple[float, float] | None:
    """Seconds from navigation to the page loaded and, scrolled to the first class section, the
    thumbnails on screen all shown, in headless Chromium; and, as the baseline, to a page of plain
    text from the same server shown (None without Playwright or the browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path(executable).is_file():
        return None
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    args += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    shown = """() => {
        if (document.body.dataset.ready !== 'true') return false;
        const section = document.querySelector('section.group');
        if (!section.dataset.loaded) { section.scrollIntoView(); return false; }
        const onScreen = [...section.querySelectorAll('img')].filter((i) => {
            const box = i.getBoundingClientRect();
            return box.bottom > 0 && box.top < window.innerHeight; });
        if (!onScreen.length) section.scrollIntoView();  // the figures above moved it
        return onScreen.length > 0 && onScreen.every((i) => i.complete && i.naturalWidth > 0);
    }"""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto("about:blank")  # the browser's own start is not timed
        start = time.perf_counter()
        page.goto(f"{base}static/view.css")  # the baseline: a page of plain text
        blank = time.perf_counter() - start
        start = time.perf_counter()
        page.goto(base)
        while not page.evaluate(shown):
            if time.perf_counter() - start > 120:
                raise TimeoutError("the page did not show its first thumbnails in 120 s")
            time.sleep(0.01)
        seconds = time.perf_counter() - start
        browser.close()
    return seconds, blank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, help="A demo corpus to copy (default: build one).")
    parser.add_argument("--clips", type=int, default=10_000)
    parser.add_argument("--per-shard", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5, help="Warm first pages timed.")
    parser.add_argument("--keep", type=Path, help="Make the corpus here and keep it.")
    parser.add_argument("--tiled", type=Path, help="Time this corpus, made by --keep before.")
    args = parser.parse_args()
    console = Console(stderr=True)
    if args.tiled:
        report(args.tiled, args, console)
        return
    tmp = Path(tempfile.mkdtemp(prefix="view-speed-"))
    try:
        demo = args.demo
        if demo is None:
            demo = tmp / "demo"
            console.print("building the 9-class demo at 128x72 ...")
            cmd = [*CLI, "build", *DEMO_ARGS, "--demo-port", "0", "--quiet", "--out", str(demo)]
            subprocess.run(cmd, check=True)
        corpus = args.keep or tmp / "tiled"
        console.print(f"copying {args.clips:,} samples into {corpus} ...")
        start = time.perf_counter()
        tile_corpus(demo, corpus, args.clips, args.per_shard)
        console.print(f"  {time.perf_counter() - start:.0f} s")
        report(corpus, args, console)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(folder: Path, args, console: Console) -> None:
    shards = Corpus(folder).manifest("shards")
    clips = Corpus(folder).manifest("clips")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*CLI, "view", str(folder), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        base = re.search(r"http://\S+/", proc.stdout.readline()).group(0)
        ready = time.perf_counter() - start
        cold = first_page(base)
        warm = statistics.median(first_page(base) for _ in range(args.repeat))
        # a thumbnail: the last clip of the last shard (not indexed yet), then its neighbour
        shard = shards.iloc[-1]
        keys = list(clips.loc[clips["shard"] == shard["shard"], "key"])
        timed, thumbs = [], []
        for key in (keys[-1], keys[-2]):
            before = rchar(proc.pid)
            t0 = time.perf_counter()
            thumbs.append(get(f"{base}media/{key}.jpg"))
            timed.append((time.perf_counter() - t0, rchar(proc.pid) - before))
        t0, before = time.perf_counter(), rchar()
        path = folder / DATA_DIR / shard["shard"]
        found = next(s for s in read_shard(path, ("jpg",)) if s.key == keys[-1])
        scan = (time.perf_counter() - t0, rchar() - before)
        assert found.members["jpg"] == thumbs[0], "the server sent other bytes"
        seconds_in_browser = browser_time(base)
    finally:
        proc.terminate()
        proc.wait()
    table = Table(title=f"landscape-av view: {len(clips):,} clips in {len(shards)} shards")
    for column in ("what", "seconds", "bytes read", "of the shard"):
        table.add_column(column, justify="left" if column == "what" else "right")
    size = int(shard["bytes"])
    table.add_row("start (manifests, statistics)", f"{ready:.2f}", "", "")
    table.add_row("first page, cold (HTML + API, 8 requests)", f"{cold:.3f}", "", "")
    table.add_row(f"first page, warm (median of {args.repeat})", f"{warm:.3f}", "", "")
    if seconds_in_browser is not None:
        table.add_row(
            "first page in headless Chromium, thumbnails shown",
            f"{seconds_in_browser[0]:.2f}",
            "",
            "",
        )
        table.add_row(
            "baseline: a plain-text page in the same browser",
            f"{seconds_in_browser[1]:.2f}",
            "",
            "",
        )
    for label, (seconds, read) in zip(
        ("thumbnail, shard not indexed yet", "thumbnail, same shard again"), timed, strict=True
    ):
        table.add_row(label, f"{seconds:.4f}", f"{read:,}", f"{read / size:.2%}")
    table.add_row(
        "baseline: scan the shard for it (read_shard)",
        f"{scan[0]:.3f}",
        f"{scan[1]:,}",
        f"{scan[1] / size:.2%}",
    )
    Console().print(table)
    print(
        json.dumps(
            {
                "clips": len(clips),
                "shards": len(shards),
                "shard_bytes": size,
                "start_s": ready,
                "first_page_cold_s": cold,
                "first_page_warm_s": warm,
                "browser_s": seconds_in_browser,
                "thumb": timed,
                "scan": scan,
            }
        )
    )


if __name__ == "__main__":
    main()
