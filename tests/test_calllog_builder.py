"""The call-log builder, fed with real Asterisk 22 byte streams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.ami.frames import Frame, FrameError, iter_frames, parse_frame
from gateway.calllog.builder import (
    ABANDONED,
    BUSY,
    INBOUND,
    INTERNAL,
    NOTE_ENDED_OFFLINE,
    NOTE_LINK_LOST,
    NOTE_PARTIAL,
    OUTBOUND,
    CallLogBuilder,
    CallRecord,
)
from gateway.clock import ManualClock

START = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)
IVR = "ivr-asyncagi-dtmf.rx.txt"


def frames_of(path: Path) -> list[Frame]:
    return [f for f in iter_frames(path.read_bytes()) if isinstance(f, Frame)]


def replay(
    builder: CallLogBuilder, clock: ManualClock, frames: list[Frame], step: float = 0.01
) -> None:
    """Feed frames as if they arrived ``step`` seconds apart."""
    for frame in frames:
        clock.advance(step)
        builder.feed(frame)


def event(name: str, **headers: str) -> Frame:
    """A frame built the way the parser builds one (for the synthetic cases only)."""
    text = f"Event: {name}\r\n" + "".join(
        f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items()
    )
    frame = parse_frame(text.rstrip("\r\n").encode())
    assert isinstance(frame, Frame)
    return frame


def new_builder() -> tuple[CallLogBuilder, ManualClock]:
    clock = ManualClock(START)
    return CallLogBuilder("main", clock), clock


def only(records: list[CallRecord]) -> CallRecord:
    assert len(records) == 1, records
    return records[0]


def test_local_call_halves_make_one_record(transcripts: Path) -> None:
    """Both halves of the Local channel in the AsyncAGI transcript give one complete record."""
    builder, clock = new_builder()
    replay(builder, clock, frames_of(transcripts / "ivr-asyncagi-dtmf.rx.txt"))
    record = only(builder.drain())
    assert record.linkedid == "1795896766.4"
    assert record.uniqueid == "1795896766.4"
    assert record.complete and not record.partial and record.note is None
    assert builder.open_records() == []
    assert record.direction == INBOUND  # it ran in the hotline context
    assert record.caller_name == "Sim Caller"
    assert record.disposition == "ANSWERED"
    assert (record.hangup_cause, record.hangup_cause_text) == (16, "Normal Clearing")
    # The Cdr of the first channel gives the times (the PBX wrote them in UTC).
    assert record.started_at == datetime(2026, 11, 28, 20, 12, 46, tzinfo=UTC)
    assert record.answered_at == datetime(2026, 11, 28, 20, 12, 46, tzinfo=UTC)
    assert record.ended_at == datetime(2026, 11, 28, 20, 12, 53, tzinfo=UTC)
    assert (record.duration_s, record.billable_s) == (6.0, 6.0)
    assert record.dtmf == "12"


def test_times_come_from_the_clock_until_a_cdr_arrives(transcripts: Path) -> None:
    """Without its Cdr a record's times are the events' arrival times from the injected clock."""
    clock = ManualClock(datetime.fromtimestamp(1795896766.2, UTC))  # the call's Linkedid second
    builder = CallLogBuilder("main", clock)
    frames = [f for f in frames_of(transcripts / "ivr-asyncagi-dtmf.rx.txt") if f.event != "Cdr"]
    replay(builder, clock, frames, step=0.5)
    record = only(builder.drain())
    assert record.complete
    assert record.started_at < record.answered_at < record.ended_at  # type: ignore[operator]
    assert record.duration_s == pytest.approx((record.ended_at - record.started_at).total_seconds())  # type: ignore[operator]
    assert record.billable_s == pytest.approx(
        (record.ended_at - record.answered_at).total_seconds()
    )  # type: ignore[operator]


def test_cdr_times_follow_the_pbx_clock_whatever_the_setting(transcripts: Path) -> None:
    """A PBX writing Cdr times in UTC+8 is learned from Uniqueid epochs; a wrong setting loses."""
    clock = ManualClock(START)
    builder = CallLogBuilder("main", clock, cdr_timezone=UTC)
    replay(builder, clock, [_shift_cdr(f, hours=8) for f in frames_of(transcripts / IVR)])
    record = only(builder.drain())
    assert record.started_at == datetime(2026, 11, 28, 20, 12, 46, tzinfo=UTC)
    assert record.ended_at == datetime(2026, 11, 28, 20, 12, 53, tzinfo=UTC)
    assert builder.pbx_offset == timedelta(hours=8)


def test_the_timezone_setting_reads_cdr_times_until_the_offset_is_learned() -> None:
    """A Cdr that cannot teach the offset (no epoch Uniqueid) is read in ``cdr_timezone``."""
    from zoneinfo import ZoneInfo

    clock = ManualClock(START)
    builder = CallLogBuilder("main", clock, cdr_timezone=ZoneInfo("Asia/Shanghai"))
    builder.feed(event("Newchannel", Channel="PJSIP/a-1", Uniqueid="x-1", Linkedid="x-1"))
    builder.feed(event("Hangup", Channel="PJSIP/a-1", Uniqueid="x-1", Linkedid="x-1", Cause="16"))
    builder.feed(
        event(
            "Cdr",
            UniqueID="x-1",
            StartTime="2026-11-29 04:00:00",
            AnswerTime="",
            EndTime="2026-11-29 04:00:10",
            Duration="10",
            BillableSeconds="0",
            Disposition="NO ANSWER",
        )
    )
    record = only(builder.drain())
    assert record.started_at == datetime(2026, 11, 28, 20, 0, tzinfo=UTC)
    assert builder.pbx_offset is None


def _shift_cdr(frame: Frame, *, hours: int) -> Frame:
    """The same Cdr as a PBX ``hours`` east of UTC writes it."""
    if frame.event != "Cdr":
        return frame
    shifted = Frame(frame)
    for key in ("StartTime", "AnswerTime", "EndTime"):
        if frame.get(key):
            local = datetime.strptime(frame[key], "%Y-%m-%d %H:%M:%S") + timedelta(hours=hours)
            shifted[key] = local.strftime("%Y-%m-%d %H:%M:%S")
    return shifted


def test_sip_call_has_caller_and_dialled_number(transcripts: Path) -> None:
    """The SIP call is one inbound record with caller number, caller name and number dialled."""
    builder, clock = new_builder()
    replay(builder, clock, frames_of(transcripts / "sip-call-rfc4733-dtmf.rx.txt"))
    record = only(builder.drain())
    assert record.direction == INBOUND
    assert record.caller_number == "sipp1"  # not a phone number: kept as received
    assert record.caller_name == "SIPp 1"
    assert record.dialled_number == "hotline"
    assert record.complete and record.disposition == "ANSWERED"
    assert record.dtmf == "2"
    # The Cdr came before the Hangup: it still gave the record its times.
    assert record.ended_at == datetime(2026, 11, 28, 20, 25, 5, tzinfo=UTC)


def test_queue_call_has_queue_wait_agent_and_recording(transcripts: Path) -> None:
    """The queue transcript gives one record with queue, wait, agent and MixMonitor file."""
    builder, clock = new_builder()
    replay(builder, clock, frames_of(transcripts / "queue-errors-command.rx.txt"))
    record = only(builder.drain())
    assert record.queue == "support"
    assert record.agent == "Agent Smith"
    assert record.queue_wait_s is not None and record.queue_wait_s > 0
    assert record.recording == "/var/spool/asterisk/monitor/rec-test.wav"
    assert record.direction == INBOUND
    assert record.caller_number == "5550001"
    assert record.complete and record.disposition == "ANSWERED"
    assert (record.duration_s, record.billable_s) == (4.0, 4.0)  # the first channel's Cdr


def test_two_hundred_calls_give_two_hundred_records(transcripts: Path) -> None:
    """The 200-call load transcript yields exactly 200 complete records, none twice."""
    builder, clock = new_builder()
    replay(builder, clock, frames_of(transcripts / "sip-load-200-calls.rx.txt"), step=0.003)
    records = builder.drain()
    assert len(records) == 200
    assert len({r.linkedid for r in records}) == 200
    assert all(r.complete and r.disposition == "ANSWERED" for r in records)
    assert builder.open_records() == []
    assert len(builder.complete_records()) == 200


def test_drain_hands_out_only_changes(transcripts: Path) -> None:
    """A drain returns what changed since the previous one; a late Cdr re-issues its record."""
    builder, clock = new_builder()
    frames = frames_of(transcripts / "ivr-asyncagi-dtmf.rx.txt")
    cdrs = [f for f in frames if f.event == "Cdr"]
    replay(builder, clock, [f for f in frames if f.event != "Cdr"])
    first = only(builder.drain())
    assert first.complete and first.duration_s is not None
    assert builder.drain() == []
    replay(builder, clock, cdrs)
    late = only(builder.drain())
    assert late.complete and late.duration_s == 6.0


def test_call_cut_midway_then_resync_closes_it_once(transcripts: Path) -> None:
    """A call whose Hangup was lost across a reconnect is completed by resync with a note, once."""
    builder, clock = new_builder()
    frames = frames_of(transcripts / "ivr-asyncagi-dtmf.rx.txt")
    cut = next(i for i, f in enumerate(frames) if f.event == "Hangup")
    replay(builder, clock, frames[:cut])
    assert only(builder.drain()).complete is False
    clock.advance(30)
    closed = builder.resync([])  # nothing is live after the reconnect
    assert closed == ["1795896766.4"]
    record = only(builder.drain())
    assert record.complete and record.note == NOTE_ENDED_OFFLINE
    assert record.ended_at == clock.now()
    # The rest of the old stream (hang-ups, Cdrs) arrives late: no second record.
    replay(builder, clock, frames[cut:])
    records = builder.drain()
    assert len(records) <= 1
    assert all(r.linkedid == "1795896766.4" and r.complete for r in records)
    assert builder.open_records() == []
    assert len(builder.complete_records()) == 1


def test_resync_keeps_live_calls(transcripts: Path) -> None:
    """Resync keeps the records of calls still live, named by Uniqueid or Linkedid, noting
    (once) that the link was down during the call."""
    builder, clock = new_builder()
    frames = frames_of(transcripts / "ivr-asyncagi-dtmf.rx.txt")
    cut = next(i for i, f in enumerate(frames) if f.event == "Hangup")
    replay(builder, clock, frames[:cut])
    builder.drain()
    assert builder.resync(["1795896766.5"]) == []  # the ;2 half is still up
    assert builder.resync(["1795896766.4"]) == []
    replay(builder, clock, frames[cut:])
    record = only(builder.drain())
    assert record.complete and record.note == NOTE_LINK_LOST


def test_resync_with_channel_list_opens_unknown_live_calls() -> None:
    """An unknown live channel listed by CoreShowChannel opens a partial record dated by its age."""
    builder, clock = new_builder()
    listed = event(
        "CoreShowChannel",
        Channel="PJSIP/trunk-00000009",
        Uniqueid="1795900000.9",
        Linkedid="1795900000.9",
        CallerIDNum="13912345678",
        CallerIDName="张三",
        ChannelState="6",
        Context="hotline",
        Exten="9600110",
        Duration="00:01:05",
    )
    assert builder.resync([listed]) == []
    record = only(builder.drain())
    assert record.partial and not record.complete and record.note == NOTE_PARTIAL
    assert record.caller_number == "+8613912345678"
    assert record.caller_name == "张三"
    assert (clock.now() - record.started_at).total_seconds() == 65
    clock.advance(5)
    builder.feed(
        event(
            "Hangup",
            Channel="PJSIP/trunk-00000009",
            Uniqueid="1795900000.9",
            Linkedid="1795900000.9",
            Cause="16",
            **{"Cause_txt": "Normal Clearing"},
        )
    )
    done = only(builder.drain())
    assert done.complete and done.hangup_cause == 16 and done.partial


def test_call_begun_before_we_connected_is_partial(transcripts: Path) -> None:
    """A call whose first events we missed gets one record marked partial, completed normally."""
    builder, clock = new_builder()
    frames = frames_of(transcripts / "queue-errors-command.rx.txt")
    join = next(i for i, f in enumerate(frames) if f.event == "QueueCallerJoin")
    replay(builder, clock, frames[join:])
    record = only(builder.drain())
    assert record.partial and record.note == NOTE_PARTIAL
    assert record.complete and record.queue == "support" and record.agent == "Agent Smith"


def test_unknown_and_garbage_events_are_ignored(transcripts: Path) -> None:
    """Events the builder does not use, responses and frames without ids change nothing."""
    builder, _ = new_builder()
    junk = [
        event("RTCPSent", Channel="PJSIP/x", Uniqueid="1.1", Linkedid="1.1"),
        event("SuccessfulAuth", Service="AMI"),
        event("Hangup"),  # no Uniqueid
        event(
            "VarSet",
            Channel="PJSIP/x",
            Variable="RTPAUDIOQOS",
            Value="x",
            Uniqueid="2.2",
            Linkedid="2.2",
        ),
        event("Cdr", UniqueID="9.9", Disposition="ANSWERED"),  # a call we never saw
        event(
            "DTMFEnd",
            Channel="PJSIP/x",
            Digit="5",
            Direction="Sent",
            Uniqueid="3.3",
            Linkedid="3.3",
        ),
        Frame({"Response": "Success", "Message": "Authentication accepted"}),
    ]
    assert [builder.feed(f) for f in junk] == [False] * len(junk)
    parsed = list(iter_frames(b"Asterisk Call Manager/11.0.0\r\nnot a frame at all\r\n\r\n"))
    assert isinstance(parsed[0], FrameError)
    assert builder.feed_all(parsed) == 0
    assert builder.drain() == [] and builder.open_records() == []


def test_attach_before_and_after_the_record_exists(transcripts: Path) -> None:
    """The flow runner's IVR path, case and recording land on the record whenever attached."""
    builder, clock = new_builder()
    frames = frames_of(transcripts / "ivr-asyncagi-dtmf.rx.txt")
    builder.attach("1795896766.4", ivr_path=["welcome", "menu:1"])
    replay(builder, clock, frames[: len(frames) // 2])
    assert only(builder.drain()).ivr_path == ("welcome", "menu:1")
    replay(builder, clock, frames[len(frames) // 2 :])
    builder.drain()
    builder.attach("1795896766.4", case_id=7, recording="/data/voice/abc.wav")
    record = only(builder.drain())
    assert record.complete and record.case_id == 7 and record.recording == "/data/voice/abc.wav"
    assert record.ivr_path == ("welcome", "menu:1")


def test_outbound_by_channel_variable_and_by_originate_action_id(transcripts: Path) -> None:
    """A call the gateway originated is outbound: by its channel variables or its ActionID."""
    frames = frames_of(transcripts / "ivr-asyncagi-dtmf.rx.txt")
    action_id = next(f.action_id for f in frames if f.event == "OriginateResponse")
    assert action_id
    builder, clock = new_builder()
    builder.expect_originate(action_id)
    replay(builder, clock, frames)
    assert only(builder.drain()).direction == OUTBOUND

    builder, clock = new_builder()
    marked = [
        event(
            "VarSet",
            Channel="Local/s@caller-sim-00000002;1",
            Variable="GATEWAY_ORIGIN",
            Value="callback",
            Uniqueid="1795896766.4",
            Linkedid="1795896766.4",
        )
        if f.event == "VarSet" and f.get("Variable") == "IVR_TEST"
        else f
        for f in frames
    ]
    replay(builder, clock, marked)
    assert only(builder.drain()).direction == OUTBOUND

    builder, clock = new_builder()
    by_session = [
        event(
            "VarSet",
            Channel="Local/s@caller-sim-00000002;2",
            Variable="GATEWAY_CALL_ID",
            Value=action_id,
            Uniqueid="1795896766.5",
            Linkedid="1795896766.4",
        )
        if f.event == "VarSet" and f.get("Variable") == "IVR_TEST"
        else f
        for f in frames
    ]
    replay(builder, clock, by_session)
    assert only(builder.drain()).direction == OUTBOUND


def test_internal_call_busy_by_hangup_cause() -> None:
    """A call outside the hotline is internal; an unanswered leg with cause 17 is BUSY."""
    builder, clock = new_builder()
    builder.feed(
        event(
            "Newchannel",
            Channel="PJSIP/seat01-00000001",
            ChannelState="4",
            CallerIDNum="801",
            CallerIDName="坐席一",
            Context="seats",
            Exten="802",
            Uniqueid="5.1",
            Linkedid="5.1",
        )
    )
    clock.advance(3)
    builder.feed(
        event(
            "Hangup",
            Channel="PJSIP/seat01-00000001",
            Uniqueid="5.1",
            Linkedid="5.1",
            Cause="17",
            **{"Cause_txt": "User busy"},
        )
    )
    record = only(builder.drain())
    assert record.direction == INTERNAL and record.disposition == BUSY
    assert record.caller_name == "坐席一" and record.dialled_number == "802"
    assert record.answered_at is None and record.billable_s == 0.0 and record.duration_s == 3.0


def test_queue_abandon_is_abandoned() -> None:
    """A caller who hangs up waiting in the queue is ABANDONED, with the wait measured."""
    builder, clock = new_builder()
    common = {
        "Channel": "PJSIP/trunk-00000002",
        "Uniqueid": "6.1",
        "Linkedid": "6.1",
        "CallerIDNum": "+8613912345678",
        "CallerIDName": "李四",
    }
    builder.feed(
        event("Newchannel", ChannelState="4", Context="from-trunk", Exten="9600110", **common)
    )
    builder.feed(event("Newstate", ChannelState="6", **common))
    builder.feed(event("QueueCallerJoin", Queue="hotline-seats", Position="1", Count="1", **common))
    clock.advance(42)
    builder.feed(event("QueueCallerAbandon", Queue="hotline-seats", HoldTime="41", **common))
    builder.feed(event("Hangup", Cause="16", **{"Cause_txt": "Normal Clearing"}, **common))
    record = only(builder.drain())
    assert record.disposition == ABANDONED and record.direction == INBOUND
    assert record.queue_wait_s == 42.0 and record.agent is None
    assert record.caller_number == "+8613912345678" and record.dialled_number == "9600110"


def test_resync_listing_a_channel_already_hung_up_does_not_bring_it_back() -> None:
    """Asterisk sends events raised during CoreShowChannels after its list: a channel whose
    Hangup was already seen stays gone, and the call completes with its last channel."""
    builder, clock = new_builder()
    a = {"Channel": "PJSIP/trunk-00000001", "Uniqueid": "1795896000.1", "Linkedid": "1795896000.1"}
    b = {"Channel": "PJSIP/seat01-00000002", "Uniqueid": "1795896000.2", "Linkedid": "1795896000.1"}
    builder.feed(event("Newchannel", ChannelState="4", Context="hotline", Exten="s", **a))
    builder.feed(event("Newchannel", ChannelState="0", Context="agents", Exten="seat01", **b))
    clock.advance(5)
    builder.feed(event("Hangup", Cause="16", **b))
    listed = [
        event("CoreShowChannel", ChannelState="6", Duration="00:00:05", **a),
        event(
            "CoreShowChannel", ChannelState="6", Duration="00:00:05", **b
        ),  # older than its Hangup
    ]
    assert builder.resync(listed) == []
    clock.advance(1)
    builder.feed(event("Hangup", Cause="16", **a))
    record = only(builder.drain())
    assert record.complete and record.note == NOTE_LINK_LOST
    assert builder.open_records() == []


def test_event_timestamps_and_linkedid_epochs_give_the_times() -> None:
    """With ``timestampevents = yes`` each event's own Timestamp is its time, whatever the
    gateway's clock says; a Linkedid with a systemname prefix still dates the call."""
    builder, _ = new_builder()  # the clock is two days away from the PBX's events
    ids = {
        "Channel": "PJSIP/trunk-01",
        "Uniqueid": "pbx1-1796052932.0",
        "Linkedid": "pbx1-1796052932.0",
    }
    builder.feed(
        event(
            "Newchannel", ChannelState="4", Context="hotline", Timestamp="1796052932.250000", **ids
        )
    )
    builder.feed(event("Newstate", ChannelState="6", Timestamp="1796052933.500000", **ids))
    builder.feed(event("Hangup", Cause="16", Timestamp="1796052950.000000", **ids))
    record = only(builder.drain())
    assert record.started_at == datetime.fromtimestamp(1796052932.25, UTC)
    assert record.answered_at == datetime.fromtimestamp(1796052933.5, UTC)
    assert record.ended_at == datetime.fromtimestamp(1796052950, UTC)
    assert record.duration_s == 17.75


def test_a_partial_call_starts_at_its_linkedid_epoch() -> None:
    """A call first seen halfway (gateway restarted) is dated by the epoch in its Linkedid."""
    builder, _ = new_builder()
    ids = {"Channel": "PJSIP/trunk-01", "Uniqueid": "1795895940.7", "Linkedid": "1795895940.7"}
    builder.feed(event("Newstate", ChannelState="6", Context="hotline", **ids))
    record = only(builder.drain())
    assert record.partial
    assert record.started_at == datetime.fromtimestamp(1795895940, UTC)  # 60 s before the clock
