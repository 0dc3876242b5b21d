"""Fuzz the data adapters: clear error or counted skip, never a traceback or a lost answer.

Hypothesis generates ``Posts.xml`` rows, Kaggle CSV rows and ``ranked_qa.json`` items
(valid, odd and broken values), optionally damaged at the byte level (a byte inserted
or deleted, a quote dropped, the file cut). For each input:

* strict: the adapter yields records or raises a :class:`~qaembed.errors.QaembedError`
  (what the CLI prints as ``error: ...``, exit 2); any other exception fails;
* ``--skip-bad``: no exception, and every answer of the input is accounted for:
  answers yielded + bad records counted + answers counted in notes >= answers in the input.

Bounded for CI: a fixed number of examples, no per-example deadline, no example database.
"""

import csv
import io
import json
import math
from pathlib import Path
from xml.sax.saxutils import quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qaembed.data.bad_records import BadRecordPolicy
from qaembed.data.kaggle import KaggleCsvPair
from qaembed.data.ranked_json import RankedQaJson
from qaembed.data.stackexchange import StackExchangeDump
from qaembed.errors import QaembedError

FUZZ = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ODD_INTEGERS = ["1e3", "1_000", "\u0661\u0662", "+5", " 5", "", "x", "9" * 25, "-0", "0", str(1 << 63), "2.0", "-7"]
integers = st.one_of(st.integers(-3, 12).map(str), st.sampled_from(ODD_INTEGERS))
texts = st.text(max_size=20)
html = st.one_of(texts, st.sampled_from([
    "<p>an answer</p>", "<img src='x.png'>", "<p></p>", "<b>" * 300 + "deep", "<b>" * 2100 + "too deep", "&amp; &nbsp;",
    "<pre>  code\n</pre>", "<script>x</script>", "<p>unclosed", "a\nb", '"quoted, text"']))
dates = st.one_of(st.just("2020-05-01T10:00:00.000"), st.sampled_from(["yesterday", "2020-13-01", "", "1e20"]), texts)


def _damage(data: bytes, damage: tuple) -> bytes:
    kind = damage[0]
    if kind == "none" or not data:
        return data
    position = int(damage[1] * len(data))
    if kind == "cut":
        return data[:position]
    if kind == "delete":
        return data[:position] + data[position + 1:]
    return data[:position] + damage[2] + data[position:]  # insert


damages = st.one_of(
    st.just(("none",)), st.tuples(st.just("cut"), st.floats(0, 1)), st.tuples(st.just("delete"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from([b"\xff", b'"', b"<", b"&", b"\n", b",", b"\x00"])),
)


def _check(adapter_factory, input_answers: int) -> None:
    try:
        strict = adapter_factory(BadRecordPolicy(skip=False))
        records = list(strict.records())
    except QaembedError:
        pass  # a clear error (exit 2 on the command line)
    else:
        left_out = sum(strict.notes.values())
        assert sum(len(r.answers) for r in records) + left_out >= input_answers
    try:
        adapter = adapter_factory(BadRecordPolicy(skip=True))
        records = list(adapter.records())
    except QaembedError as error:  # a file-level problem (no such file, wrong shape) may still be an error
        assert str(error)
        return
    written = sum(len(r.answers) for r in records)
    counted = sum(adapter.policy.counts.values()) + sum(adapter.notes.values())
    assert written + counted >= input_answers, (written, dict(adapter.policy.counts), dict(adapter.notes))
    for record in records:
        assert all(math.isfinite(a.score) for a in record.answers) and math.isfinite(record.score)


# ---------------------------------------------------------------------------------------- Posts.xml

row_attributes = st.fixed_dictionaries({}, optional={
    "Id": integers, "PostTypeId": st.sampled_from(["1", "2", "2", "5", "x"]), "ParentId": integers, "Score": integers,
    "Title": texts, "Body": html, "CreationDate": dates, "OwnerUserId": integers, "AcceptedAnswerId": integers,
})


def _row(attributes: dict[str, str]) -> str:
    escape = {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
    return "  <row " + " ".join(f"{k}={quoteattr(v, escape)}" for k, v in attributes.items()) + " />"


@FUZZ
@given(rows=st.lists(row_attributes, max_size=8), base=st.integers(1, 3), damage=damages, bom=st.booleans())
def test_posts_xml_rows(tmp_path_factory, rows, base, damage, bom):
    # a few well-formed posts around the generated rows, so there is something to lose
    good = [{"Id": "1", "PostTypeId": "1", "Score": "1", "Title": "T", "Body": "<p>q</p>"}] + [
        {"Id": str(100 + i), "PostTypeId": "2", "ParentId": "1", "Score": "0", "Body": "<p>a</p>"} for i in range(base)]
    all_rows = good + rows
    text = '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "".join(_row(r) + "\n" for r in all_rows) + "</posts>\n"
    data = _damage((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass"), damage)
    folder = tmp_path_factory.mktemp("se") / "fuzz.stackexchange.com"
    folder.mkdir()
    (folder / "Posts.xml").write_bytes(data)
    answers = data.count(b'PostTypeId="2"')  # the answer rows the (possibly damaged) file still shows
    _check(lambda policy: StackExchangeDump(folder, policy=policy, progress=False), answers)


# ---------------------------------------------------------------------------------------- Kaggle CSV

csv_rows = st.lists(st.tuples(integers, st.sampled_from(["NA", "7", "-1", "x"]), dates, integers, integers, html),
                    max_size=8)


@FUZZ
@given(rows=csv_rows, damage=st.one_of(damages, st.tuples(st.just("drop_quote"), st.floats(0, 1))))
def test_kaggle_csv_rows(tmp_path_factory, rows, damage):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Id", "OwnerUserId", "CreationDate", "ParentId", "Score", "Body"])
    good = [(str(100 + i), "NA", "2008-08-01T14:00:00Z", "1", "1", f"<p>answer {i}, quoted</p>") for i in range(3)]
    starts = []  # byte offset where each answer row starts
    for row in good + list(rows):
        starts.append(len(buffer.getvalue().encode("utf-8", "surrogatepass")))
        writer.writerow(row)
    data = buffer.getvalue().encode("utf-8", "surrogatepass")
    in_input = len(starts) if damage[0] != "cut" else sum(start < int(damage[1] * len(data)) for start in starts)
    if damage[0] == "drop_quote":
        quotes = [i for i, byte in enumerate(data) if byte == ord('"')]
        if quotes:
            cut = quotes[int(damage[1] * (len(quotes) - 1))]
            data = data[:cut] + data[cut + 1:]
    else:
        data = _damage(data, damage)
    folder = tmp_path_factory.mktemp("kaggle")
    (folder / "Questions.csv").write_text('Id,OwnerUserId,CreationDate,Score,Title,Body\n1,NA,2008-08-01T13:57:07Z,5,T,"<p>q</p>"\n')
    (folder / "Answers.csv").write_bytes(data)
    _check(lambda policy: KaggleCsvPair(folder, policy=policy, progress=False), in_input)


# ---------------------------------------------------------------------------------------- ranked_qa.json

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70), st.floats(allow_nan=True, allow_infinity=True),
              texts),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3), max_leaves=8)
answer_objects = st.fixed_dictionaries({}, optional={"id": st.one_of(st.integers(-2, 50), texts, json_values),
                                                     "body": st.one_of(html, json_values),
                                                     "score": st.one_of(st.integers(-5, 5), json_values,
                                                                        st.sampled_from(["NaN", "inf", "1e3", "12"]))})
items = st.one_of(
    json_values,
    st.fixed_dictionaries({"question": st.fixed_dictionaries({}, optional={
        "id": st.one_of(st.integers(0, 20), texts, json_values), "title": st.one_of(texts, json_values),
        "body": st.one_of(html, json_values), "tags": json_values, "score": json_values,
        "created": st.one_of(st.integers(-10, 10**12), st.floats(), dates, json_values)}),
        "answers": st.one_of(st.lists(answer_objects, max_size=4), json_values)}),
)


@FUZZ
@given(generated=st.lists(items, max_size=6), damage=damages)
def test_ranked_qa_items(tmp_path_factory, generated, damage):
    good = [{"question": {"id": 9001, "title": "T"}, "answers": [{"id": 1, "body": "<p>a</p>", "score": 1}]}]
    all_items = good + generated
    data = _damage(json.dumps(all_items, allow_nan=True).encode("utf-8", "surrogatepass"), damage)
    path = tmp_path_factory.mktemp("ranked") / "ranked_qa.json"
    path.write_bytes(data)
    try:  # the answers the (possibly damaged) file holds; unreadable JSON is a file-level error anyway
        parsed = json.loads(data.decode("utf-8"))
    except ValueError:
        parsed = []
    answers = sum(len(item["answers"]) for item in parsed if isinstance(item, dict)
                  and isinstance(item.get("answers"), list)) if isinstance(parsed, list) else 0
    _check(lambda policy: RankedQaJson(Path(path), policy=policy), answers)
