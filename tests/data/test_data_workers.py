"""Posts.xml rows cleaned in worker processes: the same records, notes and errors, in the same order,
as a sequential read; the pool keeps results in order and bounds what is in flight."""

import re
from pathlib import Path

import pytest

from qaembed.data import stackexchange, xml_chunks
from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.stackexchange import StackExchangeDump
from qaembed.data.workers import ordered_map
from qaembed.errors import DataError


def _row(i: int) -> str:
    """Rows of every kind, and damage of every kind the adapter reports, spread over many batches."""
    if i % 97 == 5:
        return f'<row Id="{i}" PostTypeId="2" ParentId="{i - 1}" Score="1e3" Body="&lt;p&gt;bad score&lt;/p&gt;" />'
    if i % 89 == 7:
        return f'<row Id="{i}" PostTypeId="2" ParentId="{i - 1}" Score="2" Body="&lt;img src=x&gt;" />'  # empty
    if i % 83 == 3:
        return f'<row Id="{i - 1}" PostTypeId="2" ParentId="{i - 2}" Score="2" Body="dup" />'  # duplicate id
    if i % 79 == 11:
        return f'<row Id="{i}" PostTypeId="5" Score="0" Body="tag wiki" />'
    if i % 71 == 13:
        return f'<row Id="{i}" PostTypeId="1" Score="3" Title="" Body="no title" />'
    if i % 61 == 17:
        return f'rox Id="{i}" stray text'  # text outside any row
    if i % 3 == 0:
        return (f'<row Id="{i}" PostTypeId="1" Score="{i % 7}" CreationDate="2020-01-0{1 + i % 9}T10:00:00.000" '
                f'Title="Question {i}?" Tags="&lt;t{i % 5}&gt;" Body="&lt;p&gt;Body of &lt;b&gt;{i}&lt;/b&gt;&lt;/p&gt;" />')
    return (f'<row Id="{i}" PostTypeId="2" ParentId="{i - i % 3}" Score="{i % 11 - 3}" '
            f'Body="&lt;p&gt;Answer {i}&lt;/p&gt;&lt;pre&gt;&lt;code&gt;x = {i}\n  y&lt;/code&gt;&lt;/pre&gt;" />')


def _site(tmp_path: Path, rows: int, *, bad_bytes: bool = True, truncate: bool = False) -> Path:
    folder = tmp_path / "site.stackexchange.com"
    folder.mkdir()
    lines = [_row(i) for i in range(3, rows + 3)]
    data = ('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "\n".join(lines) + "\n</posts>\n").encode()
    if bad_bytes:  # one line that is not UTF-8, in the middle of a batch
        marker = b'Title="Question 900?"'
        data = data.replace(marker, b'Title="Question \xff900?"')
    if truncate:
        data = data[: int(len(data) * 0.8)]
    (folder / "Posts.xml").write_bytes(data)
    return folder


def _read(folder: Path, workers: int, skip: bool):
    adapter = StackExchangeDump(folder, policy=BadRecordPolicy(skip=skip), progress=False, workers=workers)
    records = [r.model_dump() for r in adapter.records()]
    return records, adapter.policy.summary(), dict(adapter.notes)


@pytest.fixture()
def always_parallel(monkeypatch):
    monkeypatch.setattr(stackexchange, "PARALLEL_MIN_BYTES", 0)


@pytest.mark.parametrize("truncate", [False, True])
def test_workers_give_the_same_records_counts_and_examples_when_skipping(tmp_path, always_parallel, truncate):
    folder = _site(tmp_path, 3000, truncate=truncate)
    sequential = _read(folder, workers=1, skip=True)
    parallel = _read(folder, workers=2, skip=True)
    assert parallel == sequential
    records, summary, notes = sequential
    assert len(records) > 700 and summary["counts"]["non_numeric"] > 10 and summary["counts"]["invalid_encoding"] == 1
    assert notes["answer_empty_after_cleaning"] > 10 and "ignored_post_type_5" in notes
    assert summary["counts"]["malformed_xml"] > 10  # the stray-text lines (and the cut, when truncated)
    assert (len(records) < 850) == truncate  # ~930 questions whole; a cut at 80 % loses the last ~190


def test_workers_stop_at_the_same_first_error(tmp_path, always_parallel):
    folder = _site(tmp_path, 3000)
    messages = []
    for workers in (1, 2):
        with pytest.raises(DataError) as caught:
            _read(folder, workers=workers, skip=False)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "Posts.xml:" in messages[0] and "field 'Score'" in messages[0]


def test_small_files_are_read_in_this_process(tmp_path, monkeypatch):
    calls = []
    real = stackexchange.ordered_map
    monkeypatch.setattr(stackexchange, "ordered_map", lambda fn, items, workers: calls.append(workers) or real(fn, items, workers=workers))
    _read(_site(tmp_path, 60, bad_bytes=False), workers=4, skip=True)
    assert calls and set(calls) == {1}  # the pieces, then (the file has stray text) the sequential read


def _square_slowly(x: int) -> int:
    return x * x


def test_ordered_map_keeps_order_and_bounds_what_is_in_flight():
    taken = []

    def items():
        for i in range(40):
            taken.append(i)
            yield i

    results = []
    for result in ordered_map(_square_slowly, items(), workers=2, window=3):
        results.append(result)
        assert len(taken) - len(results) <= 3  # never more than the window read ahead
    assert results == [i * i for i in range(40)]


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def test_ordered_map_raises_a_worker_error_in_its_turn():
    seen = []
    with pytest.raises(ValueError, match="three"):
        for result in ordered_map(_fail_on_three, range(10), workers=2):
            seen.append(result)
    assert seen == [0, 1, 2]


def _plain_row(i: int) -> str:
    """A well-formed row; answers' bodies hold a raw newline, so some rows span two lines."""
    if i % 3 == 0:
        return (f'  <row Id="{i}" PostTypeId="1" Score="{i % 7}" CreationDate="2020-01-0{1 + i % 9}T10:00:00.000" '
                f'Title="Question {i}?" Tags="&lt;t{i % 5}&gt;" Body="&lt;p&gt;Body of {i}&lt;/p&gt;" />')
    if i % 89 == 7:
        return f'  <row Id="{i}" PostTypeId="2" ParentId="{i - i % 3}" Score="2" Body="&lt;img src=x&gt;" />'
    if i % 97 == 5:
        return f'  <row Id="{i}" PostTypeId="2" ParentId="{i - i % 3}" Score="1e3" Body="bad score" />'
    return (f'  <row Id="{i}" PostTypeId="2" ParentId="{i - i % 3}" Score="{i % 11 - 3}" '
            f'Body="&lt;pre&gt;x = {i}\n  y&lt;/pre&gt;" />')


def _plain_site(tmp_path: Path, rows: int = 2000, *, damage: dict[int, str] | None = None, tail: str = "") -> Path:
    """A dump whose rows are plain, except the rows replaced by ``damage`` (row index -> text)."""
    folder = tmp_path / "plain.stackexchange.com"
    folder.mkdir()
    lines = [(damage or {}).get(i, _plain_row(i)) for i in range(3, rows + 3)]
    data = '\ufeff<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "\n".join(lines) + "\n</posts>\n" + tail
    (folder / "Posts.xml").write_bytes(data.encode().replace(b"@BAD@", b"\xff"))
    return folder


@pytest.fixture()
def small_pieces(monkeypatch):
    """Pieces of ~4 KiB (about 25 rows), so that a small file makes many of them."""
    monkeypatch.setattr(xml_chunks, "_READ", 4096)


@pytest.fixture()
def piece_outcomes(monkeypatch):
    """The first line of each piece read in workers, with whether it was plain (run with workers=1)."""
    outcomes: list[tuple[int, bool]] = []

    def spy(job):
        first_line, lines, results = xml_chunks.parse_row_chunk(job)
        outcomes.append((first_line, results is not None))
        return first_line, lines, results

    monkeypatch.setattr(stackexchange, "parse_row_chunk", spy)
    return outcomes


def _sequential_read(monkeypatch, folder: Path, *, skip: bool):
    """The reference: the whole file through the sequential reader (no head is plain)."""
    with monkeypatch.context() as patch:
        patch.setattr(xml_chunks, "_HEAD", re.compile(rb"(?!)"))
        return _read(folder, workers=1, skip=skip)


def test_a_plain_dump_is_read_in_pieces_with_the_sequential_readers_results(tmp_path, monkeypatch, small_pieces,
                                                                           piece_outcomes):
    folder = _plain_site(tmp_path)
    reference = _sequential_read(monkeypatch, folder, skip=True)
    assert not piece_outcomes
    assert _read(folder, workers=1, skip=True) == reference
    assert len(piece_outcomes) > 20 and all(plain for _, plain in piece_outcomes)  # no piece cut inside a row
    records, summary, notes = reference
    assert len(records) > 600 and summary["counts"]["non_numeric"] > 5 and notes["answer_empty_after_cleaning"] > 5
    monkeypatch.setattr(stackexchange, "parse_row_chunk", xml_chunks.parse_row_chunk)  # the spy stays here
    monkeypatch.setattr(stackexchange, "PARALLEL_MIN_BYTES", 0)
    assert _read(folder, workers=2, skip=True) == reference


@pytest.mark.parametrize("damage, tail, reason", [
    ({1400: 'rox Id="1400" stray text'}, "", "malformed_xml"),
    ({1400: '  <row Id="1400" PostTypeId="1" Score="1" Title="Q @BAD@" Body="b" />'}, "", "invalid_encoding"),
    ({1400: '  <row Id="1400" PostTypeId="1" Score="1" Title="Q" Body="&nbsp;" />'}, "", "malformed_xml"),
    ({1400: '  <!-- a comment -->'}, "", None),
    ({}, "trailing text\n", "malformed_xml"),
])
def test_from_a_damaged_piece_on_the_sequential_reader_gives_the_same_results(tmp_path, monkeypatch, small_pieces,
                                                                             piece_outcomes, damage, tail, reason):
    folder = _plain_site(tmp_path, damage=damage, tail=tail)
    for skip in (True, False):
        try:
            reference = _sequential_read(monkeypatch, folder, skip=skip)
        except DataError as exc:
            reference = str(exc)
        piece_outcomes.clear()
        try:
            chunked = _read(folder, workers=1, skip=skip)
        except DataError as exc:
            chunked = str(exc)
        assert chunked == reference
        if skip:  # plain pieces first, then one damaged piece, and from its first line on the sequential reader
            plain = sum(ok for _, ok in piece_outcomes)
            assert plain > 20 and len(piece_outcomes) == plain + 1 and not piece_outcomes[-1][1]
    records, summary, _ = _sequential_read(monkeypatch, folder, skip=True)
    assert (summary["counts"].get(reason, 0) > 0) if reason else "malformed_xml" not in summary["counts"]


def test_a_truncated_dump_keeps_every_row_before_the_cut(tmp_path, monkeypatch, small_pieces, piece_outcomes):
    folder = _plain_site(tmp_path)
    posts = folder / "Posts.xml"
    data = posts.read_bytes()
    cut = data.index(b'<row Id="1900"') + 40
    posts.write_bytes(data[:cut])
    records, summary, _ = _read(folder, workers=1, skip=True)
    assert _sequential_read(monkeypatch, folder, skip=True) == (records, summary, _)
    assert max(int(r["id"].split(":")[1]) for r in records) == 1899 - 1899 % 3  # the last question before the cut
    assert summary["counts"]["malformed_xml"] == 1  # the cut row (those after it are not in the file)


def test_a_head_that_is_not_plain_is_read_sequentially(tmp_path, piece_outcomes):
    folder = _plain_site(tmp_path, rows=60)
    posts = folder / "Posts.xml"
    posts.write_bytes(posts.read_bytes().replace(b"<posts>\n", b"<!-- dumped -->\n<posts>\n", 1))
    records, summary, _ = _read(folder, workers=1, skip=True)
    assert not piece_outcomes and len(records) > 15


def _serialized(folder: Path, workers: int):
    adapter = StackExchangeDump(folder, policy=BadRecordPolicy(skip=True), progress=False, workers=workers)
    return list(adapter.serialized_records()), adapter.policy.summary(), dict(adapter.notes)


@pytest.mark.parametrize("questions_per_range", [1, 7, 256])
def test_records_built_in_workers_are_the_records_of_a_sequential_read(tmp_path, monkeypatch, questions_per_range):
    """Each worker groups a range of question ids from the spill store and builds their records: the same
    records (JSON, scores, dates) in the same order, and the same notes (orphan answers), as one process."""
    from qaembed.data.adapter import SerializedRecord

    folder = _site(tmp_path, 3000)  # orphan answers (parents that are bad or not questions), empty answers
    expected = [SerializedRecord.of(record) for record in
                StackExchangeDump(folder, policy=BadRecordPolicy(skip=True), progress=False).records()]
    sequential = _serialized(folder, workers=1)
    assert sequential[0] == expected
    monkeypatch.setattr(stackexchange, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(stackexchange, "_RANGE_QUESTIONS", questions_per_range)
    built = []
    real = stackexchange.serialize_question_range
    monkeypatch.setattr(stackexchange, "serialize_question_range", lambda job: built.append(job) or real(job))
    monkeypatch.setattr(stackexchange, "ordered_map",  # the spy stays in this process
                        lambda fn, items, workers: ordered_map(fn, items, workers=1))
    assert _serialized(folder, workers=2) == sequential
    assert sequential[2]["orphan_answers"] > 10
    assert len(built) >= len(expected) // questions_per_range // 2  # the ranges were that small
    monkeypatch.setattr(stackexchange, "ordered_map", ordered_map)
    monkeypatch.setattr(stackexchange, "serialize_question_range", real)
    assert _serialized(folder, workers=2) == sequential  # and in worker processes


def test_question_ranges_cover_every_id_in_order(tmp_path):
    from qaembed.data.post_store import ANSWER, QUESTION, Post, PostStore

    with PostStore(tmp_path) as store:
        assert (store.finish(), store.question_ranges(10)) == (None, [(1, None)])  # no questions: one range
    with PostStore(tmp_path) as store:
        for post_id in range(5, 1005):
            store.add_post(post_id, QUESTION if post_id % 3 else ANSWER, None, None, Post(score=0, body="b", owner_id=None,
                           owner_name=None, created=None, license=None, tags=[]))
        store.finish()
        ranges = store.question_ranges(50)
        assert ranges[0][0] == 1 and ranges[-1][1] is None
        assert all(high == low for (_, high), (low, _) in zip(ranges, ranges[1:]))  # no gap, no overlap
        assert 12 <= len(ranges) <= 15  # ~667 questions in ranges of ~50


@pytest.mark.parametrize("damage", [None, "stray", "bad_bytes"])
def test_users_read_in_pieces_give_the_sequential_readers_names_and_errors(tmp_path, monkeypatch, small_pieces,
                                                                           damage):
    folder = _plain_site(tmp_path)
    users = []
    for i in range(1, 1500):
        if i % 101 == 7:
            users.append(f'  <row Id="u{i}" DisplayName="bad id" />')  # non_numeric
        elif i % 103 == 9:
            users.append('  <row DisplayName="no id" />')  # missing_field
        elif i % 11 == 0:
            users.append(f'  <row Id="{i}" />')  # nameless: the dump's OwnerDisplayName stays
        else:
            users.append(f'  <row Id="{i}" DisplayName="Bj&#248;rn {i}" />')
    if damage == "stray":
        users[900] = "stray text"
    elif damage == "bad_bytes":
        users[900] = '  <row Id="901" DisplayName="@BAD@" />'
    text = '<?xml version="1.0" encoding="utf-8"?>\n<users>\n' + "\n".join(users) + "\n</users>\n"
    (folder / "Users.xml").write_bytes(text.encode().replace(b"@BAD@", b"\xff"))
    posts = (folder / "Posts.xml").read_text()  # owners for the posts
    (folder / "Posts.xml").write_text(re.sub(r'<row Id="(\d+)"', lambda m: f'<row Id="{m[1]}" OwnerUserId="{m[1]}"',
                                             posts))
    reference = _sequential_read(monkeypatch, folder, skip=True)
    pieces: list[tuple[str, bool]] = []

    def spy(job):
        result = xml_chunks.parse_row_chunk(job)
        pieces.append((Path(job[2]).name, result[2] is not None))
        return result

    monkeypatch.setattr(stackexchange, "parse_row_chunk", spy)
    assert _read(folder, workers=1, skip=True) == reference
    user_pieces = [plain for name, plain in pieces if name == "Users.xml"]
    assert len(user_pieces) > 5 and all(user_pieces[:-1]) and user_pieces[-1] == (damage is None)
    records, summary, _ = reference
    names = {answer["provenance"]["author"]["name"] for record in records for answer in record["answers"]
             if answer["provenance"]["author"]}
    assert "Bjørn 13" in names and summary["counts"]["non_numeric"] >= 14 and summary["counts"]["missing_field"] >= 14
    if damage is not None:
        assert summary["counts"]["malformed_xml" if damage == "stray" else "invalid_encoding"] >= 1
    monkeypatch.setattr(stackexchange, "parse_row_chunk", xml_chunks.parse_row_chunk)  # the spy stays here
    monkeypatch.setattr(stackexchange, "PARALLEL_MIN_BYTES", 0)
    assert _read(folder, workers=2, skip=True) == reference


def _sleep_and_report(seconds: float) -> int:
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="the parent-death signal is Linux only")
def test_workers_end_when_the_process_that_started_them_is_killed(tmp_path):
    """A SIGKILLed `data prepare` left its workers running (adopted by init, holding memory)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil")
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from test_data_workers import _sleep_and_report; "
            "from qaembed.data.workers import ordered_map; it = ordered_map(_sleep_and_report, [30] * 4, workers=2); "
            "print('started', flush=True); next(it)")
    parent = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline().strip() == "started"
    deadline = time.time() + 120  # a wait for a state, generous for a loaded machine
    while len(psutil.Process(parent.pid).children()) < 2 and time.time() < deadline:
        time.sleep(0.1)
    workers = psutil.Process(parent.pid).children()
    assert len(workers) >= 2
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    gone, alive = psutil.wait_procs(workers, timeout=60)  # the kernel's signal is at once; the wait is slack
    assert not alive, [p.pid for p in alive]
