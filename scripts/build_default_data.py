"""Build the embedded default data: a gzipped canonical JSONL sample of real Stack Exchange Q&A.

The package ships ``src/qaembed/default_data/stackexchange-sample.jsonl.gz`` so that
``qaembed suite`` and ``qaembed data prepare`` run on a fresh clone with no data folder
(see :func:`qaembed.paths.default_data_sources`). This script makes it from the official
dump rows in ``../shared/data/stackexchange/<site>/Posts.xml`` through the normal
ingestion (:func:`qaembed.data.sources.open_source`), so HTML is cleaned exactly as in
``qaembed data prepare`` and every record keeps its URL, author and license. Every
question of the five sites is kept (about 3 MB gzipped), so a prepared dataset made from
the sample is identical to one made from the dumps (same records, same seeded split).

Output is deterministic: sites in name order, records in the adapter's (question id)
order, one ``QARecord.model_dump_json(exclude_defaults=True)`` per line, gzip with
``mtime=0`` and no file name. The folder's ``README.md`` (counts, license, attribution)
is written too.

Run from the repository root::

    python scripts/build_default_data.py                 # rebuild both files
    python scripts/build_default_data.py --check         # exit 1 if the shipped files are stale
    python scripts/build_default_data.py --data-dir DIR  # DIR/stackexchange/<site>/Posts.xml
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
from pathlib import Path

from qaembed.data.sources import open_source
from qaembed.errors import QaembedError

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "src" / "qaembed" / "default_data"
SAMPLE_NAME = "stackexchange-sample.jsonl.gz"
SITES = (
    "beer.stackexchange.com",
    "coffee.stackexchange.com",
    "genai.stackexchange.com",
    "matheducators.stackexchange.com",
    "quantumcomputing.stackexchange.com",
)
COMMAND = "python scripts/build_default_data.py"


def build_lines(data_dir: Path) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Every record of the five sites as canonical JSONL lines, and per-site counts."""
    lines: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    for site in SITES:
        folder = data_dir / "stackexchange" / site
        if not (folder / "Posts.xml").is_file():
            raise SystemExit(f"error: {folder / 'Posts.xml'} not found (give --data-dir DIR with DIR/stackexchange/{site})")
        adapter = open_source(folder, progress=False)  # strict: any bad row stops the build
        site_counts = {"questions": 0, "answers": 0, "questions_with_answers": 0}
        for record in adapter.records():
            lines.append(record.model_dump_json(exclude_defaults=True))
            site_counts["questions"] += 1
            site_counts["answers"] += len(record.answers)
            site_counts["questions_with_answers"] += bool(record.answers)
        counts[site] = site_counts
    return lines, counts


def gzip_bytes(lines: list[str]) -> bytes:
    """The lines as one gzip member with a fixed header (mtime 0, no name): byte-stable."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        for line in lines:
            gz.write(line.encode("utf-8") + b"\n")
    return buffer.getvalue()


def readme_text(counts: dict[str, dict[str, int]], compressed_size: int) -> str:
    total = {key: sum(c[key] for c in counts.values()) for key in ("questions", "answers", "questions_with_answers")}
    rows = "\n".join(f"| {site} | {c['questions']:,} | {c['answers']:,} | {c['questions_with_answers']:,} |"
                     for site, c in counts.items())
    return f"""# Embedded default data

`{SAMPLE_NAME}` is the data `qaembed suite` and `qaembed data prepare` use when no Stack
Exchange data is found on the data search path (`QAEMBED_DATA_DIR`, `../shared/data`,
the cache): every question and answer of five small Stack Exchange sites, prepared by
qaembed's own ingestion (HTML cleaned, one canonical `QARecord` JSON per line, gzipped;
{compressed_size / 1e6:.1f} MB). It is read like any canonical JSONL source
(`qaembed data prepare path/to/{SAMPLE_NAME} --out DIR`).

| site | questions | answers | questions with answers |
|---|---|---|---|
{rows}
| **total** | **{total['questions']:,}** | **{total['answers']:,}** | **{total['questions_with_answers']:,}** |

Record ids are the same as when the official dumps are prepared
(`beer.stackexchange.com:123`), so a prepared dataset made from this file has the same
records and the same seeded train/dev/test split as one made from the dumps.

## License and attribution

Stack Exchange user content is licensed CC BY-SA (2.5 for posts before 2011-04-08, 3.0
before 2018-05-02, 4.0 after); every record and answer carries its `license`. Attribution,
as Stack Exchange asks: say the content is from Stack Exchange, link to the original
question (`provenance.url`, `https://SITE/questions/ID`), and name each author linked to
the profile (`provenance.author`, `https://SITE/users/ID`). Anything published from this
data (a report excerpt, a demo page) carries that.

## How it was built

From the unmodified `Posts.xml` (and `Users.xml` where present) dump files of the five
sites, with

    {COMMAND} --data-dir ../shared/data

(sites in name order, questions in id order, gzip with mtime 0: a rerun is byte-identical).
`{COMMAND} --check` says whether this file is stale (the ingestion changed since it was
built); `tests/data/test_default_data.py` runs that check when the dumps are present.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data",
                        help="folder holding stackexchange/<site>/Posts.xml (default ../shared/data)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="where the sample and README go")
    parser.add_argument("--check", action="store_true",
                        help="compare with the files in --out-dir instead of writing; exit 1 when they differ")
    args = parser.parse_args(argv)
    try:
        lines, counts = build_lines(args.data_dir)
    except QaembedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    payload = gzip_bytes(lines)
    readme = readme_text(counts, len(payload))
    sample_path, readme_path = args.out_dir / SAMPLE_NAME, args.out_dir / "README.md"
    if args.check:
        stale = []
        try:
            with gzip.open(sample_path, "rb") as fh:  # compare content: zlib versions may compress differently
                shipped = fh.read()
        except (OSError, EOFError) as exc:
            shipped = f"unreadable: {exc}".encode()
        if shipped != gzip.decompress(payload):
            stale.append(str(sample_path))
        if not readme_path.is_file() or _without_size(readme_path.read_text(encoding="utf-8")) != _without_size(readme):
            stale.append(str(readme_path))
        if stale:
            print(f"stale: {', '.join(stale)} differ from a rebuild from {args.data_dir}; run `{COMMAND}`",
                  file=sys.stderr)
            return 1
        print(f"up to date: {sample_path} ({len(lines):,} records)")
        return 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for path, content in ((sample_path, payload), (readme_path, readme.encode("utf-8"))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)
    print(json.dumps({"file": str(sample_path), "bytes": len(payload), "records": len(lines), "sites": counts}, indent=2))
    return 0


def _without_size(text: str) -> str:
    """README text minus the compressed size line (it may differ by zlib version)."""
    return "\n".join(line for line in text.splitlines() if " MB). It is read" not in line)


if __name__ == "__main__":
    sys.exit(main())
