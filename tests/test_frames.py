"""AMI framing: the real Asterisk 22 recordings replayed through the frame parsers.

Both the general :class:`FrameParser` and the session's :class:`FastFrameParser`
must give the same frames for every stream, however TCP cuts it.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from gateway.ami.frames import Frame, FrameError, FrameParser, iter_frames, serialize
from gateway.pbx.wire import FastFrameParser

PARSERS = [FrameParser, FastFrameParser]

# What each recording holds, counted by hand from its scenario (see the README).
EXPECTED = {
    "sip-load-200-calls.rx.txt": {
        "E:CEL": 1600,
        "E:VarSet": 1400,
        "E:Newexten": 1000,
        "E:AGIExecStart": 800,
        "E:AGIExecEnd": 800,
        "E:AsyncAGIExec": 800,
        "E:Newchannel": 200,
        "E:Newstate": 200,
        "E:AsyncAGIStart": 200,
        "E:DTMFBegin": 200,
        "E:DTMFEnd": 200,
        "E:AsyncAGIEnd": 200,
        "E:SoftHangupRequest": 200,
        "E:Cdr": 200,
        "E:Hangup": 200,
        "E:DeviceStateChange": 2,
        "E:FullyBooted": 1,
        "E:SuccessfulAuth": 1,
        "R:Success": 801,
        "R:Goodbye": 1,
    },
    "ivr-asyncagi-dtmf.rx.txt": {
        "R:Success": 8,
        "R:Goodbye": 1,
        "E:AsyncAGIStart": 1,
        "E:AsyncAGIExec": 4,
        "E:AsyncAGIEnd": 1,
        "E:OriginateResponse": 1,
        "E:Hangup": 2,
        "E:Newchannel": 2,
        "E:DTMFBegin": 2,
        "E:DTMFEnd": 2,
        "E:Cdr": 2,
        "E:CEL": 13,
    },
    "sip-call-rfc4733-dtmf.rx.txt": {
        "R:Success": 4,
        "R:Goodbye": 1,
        "E:AsyncAGIStart": 1,
        "E:AsyncAGIExec": 3,
        "E:AsyncAGIEnd": 1,
        "E:DTMFBegin": 1,
        "E:DTMFEnd": 1,
        "E:Hangup": 1,
    },
    "queue-errors-command.rx.txt": {
        "R:Success": 9,
        "R:Error": 2,
        "R:Goodbye": 1,
        "E:QueueParams": 1,
        "E:QueueMember": 1,
        "E:QueueStatusComplete": 1,
        "E:CoreShowChannel": 4,
        "E:CoreShowChannelsComplete": 1,
        "E:QueueCallerJoin": 1,
        "E:AgentConnect": 1,
        "E:AgentComplete": 1,
        "E:Cdr": 3,
        "E:OriginateResponse": 1,
        "E:MixMonitorStart": 1,
        "E:RequestBadFormat": 1,
    },
}
TOTAL_EVENTS_LOAD = 8204


def kind(frame: Frame) -> str:
    if frame.event:
        return "E:" + frame.event
    if frame.response:
        return "R:" + frame.response
    return "A:" + (frame.action or "?")


def feed_in_chunks(parser: FrameParser, data: bytes, seed: int) -> list[Frame | FrameError]:
    rng = random.Random(seed)
    out: list[Frame | FrameError] = []
    pos = 0
    while pos < len(data):
        size = rng.choice((1, 2, 3, 7, 64, 333, 1460, 4096, 16384))
        out.extend(parser.feed(data[pos : pos + size]))
        pos += size
    return out


def rx_files(transcripts: Path) -> list[Path]:
    return sorted(transcripts.glob("*.rx.txt"))


@pytest.mark.parametrize("parser_class", PARSERS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recordings_replay_without_errors(
    transcripts: Path, parser_class: type[FrameParser], name: str
) -> None:
    """Every recorded stream parses with no error; its frames count as the scenario says."""
    data = (transcripts / name).read_bytes()
    parser = parser_class()
    frames = parser.feed(data)
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert parser.pending == 0
    assert not [f for f in frames if isinstance(f, FrameError)]
    counts = Counter(kind(f) for f in frames if isinstance(f, Frame))
    for key, expected in EXPECTED[name].items():
        assert counts[key] == expected, key
    if name.startswith("sip-load"):
        assert sum(v for k, v in counts.items() if k.startswith("E:")) == TOTAL_EVENTS_LOAD


@pytest.mark.parametrize("parser_class", PARSERS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_cut_gives_the_same_frames(
    transcripts: Path, parser_class: type[FrameParser], seed: int
) -> None:
    """Fed in random pieces (1 byte to 16 KiB), every recording gives the frames it gives whole."""
    for path in rx_files(transcripts):
        data = path.read_bytes()
        whole = FrameParser().feed(data)
        cut = feed_in_chunks(parser_class(), data, seed)
        assert cut == whole, path.name


@pytest.mark.parametrize("name", ["ivr-asyncagi-dtmf", "sip-call-rfc4733-dtmf"])
def test_every_action_id_sent_is_answered(transcripts: Path, name: str) -> None:
    """The ActionIDs of the recorded actions and of Asterisk's responses are the same set."""
    sent = [
        f for f in iter_frames((transcripts / f"{name}.tx.txt").read_bytes(), expect_banner=False)
    ]
    assert all(isinstance(f, Frame) and f.action for f in sent)
    received = [f for f in iter_frames((transcripts / f"{name}.rx.txt").read_bytes())]
    responses = [f for f in received if isinstance(f, Frame) and f.response and not f.event]
    sent_ids = [f.action_id for f in sent if isinstance(f, Frame)]
    assert len(set(sent_ids)) == len(sent_ids)
    assert sorted(f.action_id or "" for f in responses) == sorted(i or "" for i in sent_ids)


def test_agi_command_ids_match_exec_events(transcripts: Path) -> None:
    """Each AGI action's CommandID comes back as the CommandId of one AsyncAGIExec."""
    for name in ("ivr-asyncagi-dtmf", "sip-call-rfc4733-dtmf"):
        sent = iter_frames((transcripts / f"{name}.tx.txt").read_bytes(), expect_banner=False)
        ids = [f["CommandID"] for f in sent if isinstance(f, Frame) and f.action == "AGI"]
        received = iter_frames((transcripts / f"{name}.rx.txt").read_bytes())
        execs = [
            f["CommandId"] for f in received if isinstance(f, Frame) and f.event == "AsyncAGIExec"
        ]
        assert execs == ids


CHINESE = (
    "Event: Newchannel\r\nChannel: PJSIP/trunk-00000001\r\nCallerIDNum: 13800138000\r\n"
    "CallerIDName: 张伟（市民）\r\nUniqueid: 1.1\r\n\r\n"
    "Event: Hangup\r\nChannel: PJSIP/trunk-00000001\r\nUniqueid: 1.1\r\n\r\n"
).encode()


@pytest.mark.parametrize("parser_class", PARSERS)
def test_split_utf8_survives_every_offset(parser_class: type[FrameParser]) -> None:
    """A Chinese CallerIDName cut at any byte offset, into two or three reads, arrives whole."""
    for cut in range(1, len(CHINESE)):
        parser = parser_class(expect_banner=False)
        frames = parser.feed(CHINESE[:cut]) + parser.feed(CHINESE[cut:])
        assert [
            f["CallerIDName"] for f in frames if isinstance(f, Frame) and f.event == "Newchannel"
        ] == ["张伟（市民）"], cut
        assert len(frames) == 2
    for cut in range(1, len(CHINESE) - 1, 3):
        parser = parser_class(expect_banner=False)
        frames = (
            parser.feed(CHINESE[:cut])
            + parser.feed(CHINESE[cut : cut + 2])
            + parser.feed(CHINESE[cut + 2 :])
        )
        assert isinstance(frames[0], Frame) and frames[0]["CallerIDName"] == "张伟（市民）"


@pytest.mark.parametrize("parser_class", PARSERS)
def test_malformed_frame_is_reported_and_skipped(parser_class: type[FrameParser]) -> None:
    """A frame with a line that is not 'Key: Value' is an error; the next frame still parses."""
    parser = parser_class(expect_banner=False)
    out = parser.feed(b"Event: Bad\r\nthis is not a header\r\n\r\nEvent: Good\r\nA: 1\r\n\r\n")
    assert isinstance(out[0], FrameError)
    assert "this is not a header" in out[0].reason
    assert isinstance(out[1], Frame) and out[1].event == "Good"


@pytest.mark.parametrize("parser_class", PARSERS)
def test_frame_without_event_or_response(parser_class: type[FrameParser]) -> None:
    """A frame with neither Event, Response nor Action is refused with that reason."""
    parser = parser_class(expect_banner=False)
    out = parser.feed(b"Foo: 1\r\nBar: 2\r\n\r\nResponse: Success\r\nActionID: 7\r\n\r\n")
    assert isinstance(out[0], FrameError)
    assert "no Event, Response or Action" in out[0].reason
    assert isinstance(out[1], Frame) and out[1].action_id == "7"


@pytest.mark.parametrize("parser_class", PARSERS)
def test_oversized_frame_is_dropped_once(parser_class: type[FrameParser]) -> None:
    """A frame larger than the limit yields one error, then parsing resumes after it."""
    parser = parser_class(expect_banner=False)
    parser._max = 1000
    big = b"Event: Big\r\n" + b"X: " + b"y" * 5000 + b"\r\n\r\n"
    out: list[Frame | FrameError] = []
    for i in range(0, len(big), 700):
        out.extend(parser.feed(big[i : i + 700]))
    out.extend(parser.feed(b"Event: After\r\n\r\n"))
    errors = [f for f in out if isinstance(f, FrameError)]
    assert len(errors) == 1 and "larger than" in errors[0].reason
    assert [f.event for f in out if isinstance(f, Frame)] == ["After"]


@pytest.mark.parametrize("parser_class", PARSERS)
@pytest.mark.parametrize("ending", [b"\r\n\r\n", b"\r\n\n", b"\n\n"])
def test_frame_endings(parser_class: type[FrameParser], ending: bytes) -> None:
    """Frames ended by CRLF CRLF, CRLF LF or LF LF all parse to the same headers."""
    line_end = b"\n" if ending == b"\n\n" else b"\r\n"
    one = b"Event: A" + line_end + b"Uniqueid: 1" + ending
    two = b"Event: B" + line_end + b"Uniqueid: 2" + ending
    parser = parser_class(expect_banner=False)
    out = parser.feed(one + two[:5]) + parser.feed(two[5:])
    assert out == [Frame(Event="A", Uniqueid="1"), Frame(Event="B", Uniqueid="2")]


@pytest.mark.parametrize("parser_class", PARSERS)
def test_banner_alone_then_frames(parser_class: type[FrameParser]) -> None:
    """The banner line (no blank line after it) is read apart, even split across reads."""
    parser = parser_class()
    assert parser.feed(b"Asterisk Call Man") == []
    assert parser.feed(b"ager/11.0.0\r\n") == []
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    out = parser.feed(
        b"Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
    )
    assert out == [Frame(Response="Success", ActionID="1", Message="Authentication accepted")]


@pytest.mark.parametrize("parser_class", PARSERS)
def test_banner_with_first_frame_in_one_read(parser_class: type[FrameParser]) -> None:
    """Banner and first response in one read give the banner and the frame."""
    parser = parser_class()
    out = parser.feed(
        b"Asterisk Call Manager/11.0.0\r\nResponse: Error\r\nActionID: x\r\n"
        b"Message: Authentication failed\r\n\r\n"
    )
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert len(out) == 1 and isinstance(out[0], Frame) and out[0].response == "Error"


@pytest.mark.parametrize("parser_class", PARSERS)
def test_no_banner_keeps_the_first_frame(parser_class: type[FrameParser]) -> None:
    """A stream that starts with a frame (no banner) loses nothing; banner stays None."""
    parser = parser_class()
    out = parser.feed(b"Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n")
    assert parser.banner is None
    assert out == [Frame(Event="FullyBooted", Status="Fully Booted")]


@pytest.mark.parametrize("parser_class", PARSERS)
def test_repeated_keys_and_empty_values(parser_class: type[FrameParser]) -> None:
    """Repeated keys keep every value in order; an empty value stays an empty string."""
    parser = parser_class(expect_banner=False)
    out = parser.feed(
        b"Response: Success\r\nActionID: C1\r\nMessage: Command output follows\r\n"
        b"Output: line one\r\nOutput: a: b\r\nOutput: \r\nAccountCode: \r\n\r\n"
    )
    frame = out[0]
    assert isinstance(frame, Frame)
    assert frame.getall("Output") == ["line one", "a: b", ""]
    assert frame["Output"] == "line one"
    assert frame["AccountCode"] == ""


def test_fast_parser_drops_unwanted_events_only() -> None:
    """With keep set, unwanted events are dropped unparsed; wanted ones, responses and
    events carrying an ActionID (event-list items) pass."""
    parser = FastFrameParser(keep=frozenset({"Hangup"}), expect_banner=False)
    data = (
        b"Event: VarSet\r\nVariable: x\r\n\r\n"
        b"Event: Hangup\r\nUniqueid: 1\r\n\r\n"
        b"Event: CoreShowChannel\r\nActionID: 9\r\n\r\n"
        b"Response: Success\r\nActionID: 9\r\n\r\n"
        b"Event: CEL\r\n\r\n"
    )
    out = parser.feed(data)
    assert [kind(f) for f in out if isinstance(f, Frame)] == [
        "E:Hangup",
        "E:CoreShowChannel",
        "R:Success",
    ]
    assert parser.skipped == 2


@pytest.mark.parametrize("keep", [None, frozenset({"Hangup", "Newchannel"})])
def test_fast_parser_region_cut_mid_frame_and_mid_character(keep: frozenset[str] | None) -> None:
    """A read ending mid-frame, inside a Chinese character, keeps the tail for the next read."""
    parser = FastFrameParser(keep=keep, expect_banner=False)
    cut = CHINESE.index("张".encode()) + 1  # inside the first character of the name
    first = parser.feed(CHINESE[:cut])
    assert first == [] and parser.pending == cut
    rest = parser.feed(CHINESE[cut:])
    assert [
        f["CallerIDName"] for f in rest if isinstance(f, Frame) and f.event == "Newchannel"
    ] == ["张伟（市民）"]
    assert parser.pending == 0


@pytest.mark.parametrize("keep", [None, frozenset({"A", "B", "C"})])
def test_fast_parser_crlf_lf_end_mixed_with_normal_frames(keep: frozenset[str] | None) -> None:
    """A CRLF LF frame end among CRLF CRLF ones cuts exactly where the general parser does."""
    data = (
        b"Event: A\r\nX: 1\r\n\r\nEvent: B\r\nX: 2\r\n\nEvent: C\r\nX: 3\r\n\r\n"
        b"Event: A\r\nX: 4\r\n\r\n"
    )
    expected = FrameParser(expect_banner=False).feed(data)
    assert [f.get("X") for f in expected if isinstance(f, Frame)] == ["1", "2", "3", "4"]
    for cut in range(1, len(data)):
        parser = FastFrameParser(keep=keep, expect_banner=False)
        assert parser.feed(data[:cut]) + parser.feed(data[cut:]) == expected, cut


@pytest.mark.parametrize("keep", [None, frozenset({"A"})])
def test_fast_parser_lone_lf_inside_frame(keep: frozenset[str] | None) -> None:
    """A lone LF line end inside a frame gives two headers, as in the general parser."""
    data = b"Event: A\nX: 1\r\n\r\nEvent: A\r\nX: 2\r\n\r\n"
    out = FastFrameParser(keep=keep, expect_banner=False).feed(data)
    assert out == FrameParser(expect_banner=False).feed(data)
    assert out == [Frame(Event="A", X="1"), Frame(Event="A", X="2")]


def test_fast_parser_bulk_path_reports_what_the_general_path_reports() -> None:
    """Bad lines, repeated keys, blank-line runs and kind-less frames in one read: the
    fast parser gives exactly the general parser's frames and errors."""
    data = (
        b"Event: A\r\nX: 1\r\n\r\n"
        b"Event: Bad\r\nno separator here\r\nY: a: b\r\n\r\n"  # counts balance out
        b"Event: R\r\nV: 1\r\nV: 2\r\n\r\n\r\n\r\n"
        b"Foo: 1\r\n\r\n"
        b"Event: Z\r\nK:v\r\n\r\n"
    )
    fast = FastFrameParser(expect_banner=False).feed(data)
    assert fast == FrameParser(expect_banner=False).feed(data)
    errors = [f for f in fast if isinstance(f, FrameError)]
    assert [e.reason.split(":")[0] for e in errors] == [
        "line without 'Key",
        "no Event, Response or Action header",
    ]
    frames = [f for f in fast if isinstance(f, Frame)]
    assert [f.event for f in frames] == ["A", "R", "Z"]
    assert frames[1].getall("V") == ["1", "2"] and frames[2]["K"] == "v"


def test_serialize_cleans_line_breaks_in_values_whatever_the_path() -> None:
    """A CR or LF inside a value becomes a space; lists repeat the key; other types print."""
    assert serialize([("Event", "A"), ("Data", "x\r\ny"), ("N", "1")]) == (
        b"Event: A\r\nData: x  y\r\nN: 1\r\n\r\n"
    )
    assert serialize([("Data", "only\rcr")]) == b"Data: only cr\r\n\r\n"
    assert serialize({"Variable": ["a=1", "b=2\n"], "Count": 3}) == (  # type: ignore[dict-item]
        b"Variable: a=1\r\nVariable: b=2 \r\nCount: 3\r\n\r\n"
    )
    assert serialize(iter([("Event", "Ping"), ("Ping", "Pong")])) == (
        b"Event: Ping\r\nPing: Pong\r\n\r\n"
    )
