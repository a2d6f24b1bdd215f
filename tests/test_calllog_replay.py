"""The gateway's own AMI session beside a real Asterisk 22 (shipped configs), replayed
through the frame parser and the call-log builder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.ami.frames import Frame
from gateway.calllog.builder import (
    ENDED_BY_CALLER,
    ENDED_BY_GATEWAY,
    ENDED_BY_SEAT,
    INBOUND,
    OUTBOUND,
    CallLogBuilder,
    CallRecord,
)
from gateway.clock import ManualClock
from tests.session_transcript import load

SESSION = "gateway-session-shipped-config.txt"


def replay_session(path: Path) -> CallLogBuilder:
    """Feed every received frame at its recorded time; resync after each reconnect's list."""
    sessions = load(path)
    clock = ManualClock(datetime.fromtimestamp(sessions[0].opened_at, UTC))
    # The gateway read Cdr times in its own zone, Asia/Shanghai: 8 hours early.
    builder = CallLogBuilder("main", clock, cdr_timezone=ZoneInfo("Asia/Shanghai"))
    for number, session in enumerate(sessions):
        listed: list[Frame] = []
        for timed in session.received:
            clock.advance(max(0.0, (timed.when - clock.now()).total_seconds()))
            frame = timed.frame
            if frame.event == "CoreShowChannel":
                listed.append(frame)
            elif frame.event == "CoreShowChannelsComplete" and number > 0:
                builder.resync(listed)
            builder.feed(frame)
    return builder


@pytest.fixture(scope="module")
def replayed() -> CallLogBuilder:
    from tests.conftest import TRANSCRIPTS

    return replay_session(TRANSCRIPTS / SESSION)


@pytest.fixture
def records(replayed: CallLogBuilder) -> dict[str, CallRecord]:
    assert replayed.open_records() == []
    return {r.linkedid: r for r in replayed.complete_records()}


def utc(hms: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-30T{hms}+00:00")


def test_the_loader_splits_six_sessions_and_parses_every_frame(transcripts: Path) -> None:
    """Six TCP sessions, each opened by the banner, every line parsed into frames."""
    sessions = load(transcripts / SESSION)
    assert len(sessions) == 6
    assert {s.banner for s in sessions} == {"Asterisk Call Manager/11.0.0"}
    assert sum(len(s.received) for s in sessions) > 6000
    assert sessions[0].sent[0].frame.action == "Challenge"
    assert sum(len(s.notes) for s in sessions) == 4  # refused reconnects while Asterisk was down


def test_cdr_times_are_read_in_utc_not_the_gateway_timezone(records: dict[str, CallRecord]) -> None:
    """The PBX ran in UTC: its Cdr 15:35:32 is 15:35:32 UTC, the epoch in the Linkedid."""
    first = records["1796052932.0"]
    assert first.started_at == utc("15:35:32") == datetime.fromtimestamp(1796052932, UTC)
    assert first.answered_at == utc("15:35:32")
    assert first.ended_at == utc("15:36:43")
    assert (first.duration_s, first.billable_s) == (71.0, 71.0)
    for record in records.values():
        linked = datetime.fromtimestamp(int(record.linkedid.split(".")[0]), UTC)
        assert abs(record.started_at - linked) <= timedelta(seconds=1), record


def test_a_call_through_two_seats_spans_every_cdr_segment(records: dict[str, CallRecord]) -> None:
    """Two Cdr segments (38 s to seat 1, 20 s to seat 2) make one 59 s record, not 20 s."""
    call = records["1796053041.12"]
    assert call.direction == INBOUND
    assert call.started_at == utc("15:37:21")
    assert call.answered_at == utc("15:37:21")
    assert call.ended_at == utc("15:38:20")
    assert call.duration_s == 59.0
    assert call.billable_s == 58.0  # 38 + 20, Asterisk's own counts
    assert call.talk_s is not None and 0 < call.talk_s < 59
    assert call.agent is not None and call.queue == "hotline"
    assert call.ended_by == ENDED_BY_SEAT


def test_callbacks_are_outbound_and_tied_to_their_originate(
    records: dict[str, CallRecord],
) -> None:
    """With no dialplan read class, the OriginateResponse (context callback) marks them."""
    outbound = [r for r in records.values() if r.direction == OUTBOUND]
    assert len(outbound) == 33  # every Originate the gateway sent
    for record in outbound:
        assert record.originate_id is not None
        assert record.originate_id.startswith("action/")
        assert record.recording is None  # the callback context records nothing
    first = next(r for r in outbound if r.linkedid == "1796053467.41")
    assert first.originate_id == "action/827e29cb-05d9-4153-9482-4093d0a90a5e/1/289"
    assert first.dialled_number == "+8613800138001"
    assert first.ended_by == ENDED_BY_GATEWAY


def test_hotline_records_name_their_recording_and_who_ended_them(
    records: dict[str, CallRecord],
) -> None:
    """MixMonitorStart in [hotline] names hotline/<PBX-local date>/<Uniqueid>.wav."""
    inbound = [r for r in records.values() if r.direction == INBOUND]
    assert len(inbound) >= 15
    for record in inbound:
        assert record.recording == f"hotline/2026/11/30/{record.uniqueid}.wav"
    # The gateway hung these up with AGI HANGUP (cause 0), the others were the caller.
    assert records["1796052932.0"].hangup_cause == 0
    assert records["1796052932.0"].ended_by == ENDED_BY_GATEWAY
    assert records["1796053029.4"].ended_by == ENDED_BY_CALLER


def test_the_pbx_offset_is_learned_from_its_cdrs(replayed: CallLogBuilder) -> None:
    """A channel's first Cdr against the epoch in its Uniqueid: the PBX runs at UTC+00:00."""
    assert replayed.pbx_offset == timedelta(0)
