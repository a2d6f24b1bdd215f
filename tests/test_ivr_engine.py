"""The flow engine driven through every branch of the hotline and survey flows.

Interpreting a flow is the pure core, so a scripted stand-in for the live call is
used here (integration against the simulated PBX lives with the PBX tests). The
caller's side is a script: each item answers the next call that waits for the
caller (``get_data``, ``record_file``, ``exec``); ``stream_file`` plays through
unless the next item interrupts it or hangs up on it. Every call is logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.ivr.actions import ActionCall, ActionRegistry, ActionResult
from gateway.ivr.channel import RecordResult
from gateway.ivr.flow import Flow, load_flows
from gateway.ivr.hours import WorkingHours
from gateway.ivr.prompts import PromptCatalogue, load_catalogue
from gateway.ivr.runner import FlowResult, FlowRunner, MessageFolder
from gateway.pbx.exceptions import AgiCommandFailed, ChannelHungUp, ChannelLinkLost

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Keys:
    """The caller keys ``digits`` at a GET DATA (``timed_out`` as Asterisk says it)."""

    digits: str
    timed_out: bool = False


SILENCE = Keys("", timed_out=True)


@dataclass(frozen=True)
class Speak:
    """The caller speaks for ``ms`` into a recording, which ends by ``ended_by``."""

    ms: int
    ended_by: str = "dtmf"


@dataclass(frozen=True)
class QueueEnds:
    """The Queue application returns ``code`` (nobody answered in time)."""

    code: int = 0


@dataclass(frozen=True)
class Interrupt:
    """The caller presses ``digit`` while an interruptible prompt plays."""

    digit: str


@dataclass(frozen=True)
class HangUp:
    """The caller hangs up during the next waiting call, or during prompt ``prompt``."""

    prompt: str | None = None


@dataclass(frozen=True)
class LinkDrops:
    """The AMI link drops during the next waiting call (the caller is still there)."""


Step = Keys | Speak | QueueEnds | Interrupt | HangUp | LinkDrops


@dataclass
class ScriptedChannel:
    script: list[Step]
    name: str = "PJSIP/trunk-00000001"
    uniqueid: str = "1764468000.1"
    linkedid: str = "1764468000.1"
    caller_number: str = "13912345678"
    caller_name: str = ""
    dialled_number: str = "9600110"
    variables: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    recordings: list[str] = field(default_factory=list)
    playbacks: list[tuple[str, ...]] = field(default_factory=list)  # one per EXEC Playback
    readings: list[tuple[str, ...]] = field(default_factory=list)  # one per EXEC Read
    hung_up: bool = False

    def variable(self, name: str) -> str | None:
        return self.variables.get(name)

    @property
    def prompts(self) -> list[str]:
        """Every prompt played, in order (STREAM FILE and GET DATA)."""
        return [
            arg for call, arg in self.calls if call in ("stream_file", "play", "read", "get_data")
        ]

    def _gone(self, during: str) -> None:
        if self.hung_up:
            raise AssertionError(f"{during} called after the caller hung up")

    def _next(self, call: str) -> Step:
        if not self.script:
            raise AssertionError(f"the caller's script has nothing left for {call}")
        return self.script.pop(0)

    async def answer(self) -> None:
        self.calls.append(("answer", ""))

    async def stream_file(self, prompt: str, escape_digits: str = "") -> str | None:
        self._gone("stream_file")
        self.calls.append(("stream_file", prompt))
        if self.script:
            step = self.script[0]
            if isinstance(step, HangUp) and step.prompt == prompt:
                self.script.pop(0)
                self.hung_up = True
                raise ChannelHungUp(self.name, "STREAM FILE")
            if isinstance(step, Interrupt) and escape_digits:
                assert step.digit in escape_digits, f"{step.digit!r} cannot interrupt {prompt}"
                self.script.pop(0)
                return step.digit
        return None

    async def play(self, prompts: list[str]) -> None:
        """One command for several prompts (EXEC Playback): a hang-up on any piece ends it."""
        self._gone("play")
        assert len(prompts) > 1, "a single prompt is a STREAM FILE"
        self.playbacks.append(tuple(prompts))
        for prompt in prompts:
            self.calls.append(("play", prompt))
            if self.script:
                step = self.script[0]
                if isinstance(step, HangUp) and step.prompt == prompt:
                    self.script.pop(0)
                    self.hung_up = True
                    raise ChannelHungUp(self.name, "EXEC Playback")

    async def read_digits(
        self, prompts: list[str], timeout_ms: int, max_digits: int
    ) -> tuple[str, bool]:
        """Several prompts then digits in one go (EXEC Read): any key interrupts a piece."""
        self._gone("read_digits")
        assert len(prompts) > 1, "a single prompt is a GET DATA"
        self.readings.append(tuple(prompts))
        for prompt in prompts:
            self.calls.append(("read", prompt))
            step = self.script[0] if self.script else None
            if isinstance(step, HangUp) and step.prompt == prompt:
                self.script.pop(0)
                self.hung_up = True
                raise ChannelHungUp(self.name, "EXEC Read")
            if isinstance(step, Interrupt):
                self.script.pop(0)
                return step.digit, False
        return self._keys("EXEC Read", max_digits)

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        self._gone("get_data")
        self.calls.append(("get_data", prompt))
        return self._keys(f"GET DATA {prompt}", max_digits)

    def _keys(self, command: str, max_digits: int) -> tuple[str, bool]:
        """The caller's answer to a command collecting digits: keys, a hang-up, a link lost."""
        step = self._next(command)
        if isinstance(step, HangUp):
            self.hung_up = True
            raise ChannelHungUp(self.name, command)
        if isinstance(step, LinkDrops):
            self.hung_up = True
            raise ChannelLinkLost(self.name, command)
        assert isinstance(step, Keys), f"{command} met {step!r}"
        assert len(step.digits) <= max_digits, f"{step.digits!r} is over {max_digits} digits"
        return step.digits, step.timed_out

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        raise AssertionError("the flow engine does not use WAIT FOR DIGIT")

    async def record_file(
        self,
        path: str,
        fmt: str = "wav",
        escape_digits: str = "#",
        timeout_ms: int = 60000,
        beep: bool = True,
        silence_s: int | None = 5,
    ) -> RecordResult:
        self._gone("record_file")
        self.calls.append(("record_file", path))
        assert Path(path).parent.is_dir(), f"the folder of {path} was not made"
        step = self._next(f"RECORD FILE {path}")
        if isinstance(step, HangUp):
            self.hung_up = True
            raise ChannelHungUp(self.name, "RECORD FILE")
        assert isinstance(step, Speak), f"RECORD FILE met {step!r}"
        if step.ended_by == "hangup":
            self.hung_up = True
        result = RecordResult(
            path,
            step.ended_by,
            "#" if step.ended_by == "dtmf" else None,
            0 if step.ended_by == "failed" else min(step.ms, timeout_ms),
            fmt,
        )
        if not result.failed:
            self.recordings.append(result.file)
        return result

    async def set_variable(self, name: str, value: str) -> None:
        self.calls.append(("set_variable", f"{name}={value}"))

    async def exec(self, application: str, options: str = "") -> int:
        self._gone("exec")
        self.calls.append(("exec", f"{application}({options})"))
        step = self._next(f"EXEC {application}")
        if isinstance(step, HangUp):
            self.hung_up = True
            raise ChannelHungUp(self.name, f"EXEC {application}")
        assert isinstance(step, QueueEnds), f"EXEC {application} met {step!r}"
        return step.code

    async def hangup(self) -> None:
        self._gone("hangup")
        self.calls.append(("hangup", ""))
        self.hung_up = True


@dataclass
class FakeActions:
    """Domain actions that answer from a table and remember every call."""

    outcomes: dict[str, ActionResult] = field(default_factory=dict)
    calls: list[ActionCall] = field(default_factory=list)
    raises: dict[str, Exception] = field(default_factory=dict)

    def registry(self, *names: str) -> ActionRegistry:
        registry = ActionRegistry()
        for name in names or tuple(registry.specs):
            registry.register(name, self._action(name))
        return registry

    def _action(self, name: str):  # type: ignore[no-untyped-def]
        async def action(call: ActionCall) -> ActionResult:
            self.calls.append(call)
            if name in self.raises:
                raise self.raises[name]
            return self.outcomes[name]

        return action

    def args(self, name: str) -> list[dict[str, str]]:
        return [dict(c.args) for c in self.calls if c.name == name]


# --------------------------------------------------------------------------- set-up


@pytest.fixture(scope="module")
def catalogue() -> PromptCatalogue:
    return load_catalogue(ROOT / "recordings" / "prompts.yaml")


@pytest.fixture(scope="module")
def flows(catalogue: PromptCatalogue) -> dict[str, Flow]:
    return load_flows(ROOT / "flows", catalogue)


@pytest.fixture
def actions() -> FakeActions:
    return FakeActions(
        outcomes={
            "hotline.open_case": ActionResult("opened", {"case_number": "TS20261130-0017"}),
            "hotline.lookup_status": ActionResult("found", {"status": "ready"}),
            "hotline.case_status": ActionResult("not_case"),
            "hotline.case_status_pin": ActionResult("wrong_pin"),
            "survey.record_rating": ActionResult("recorded", {"rating_id": "41"}),
            "survey.record_reason": ActionResult("recorded", {"reason_id": "7"}),
        }
    )


@pytest.fixture
def run(
    flows: dict[str, Flow],
    catalogue: PromptCatalogue,
    actions: FakeActions,
    clock: ManualClock,
    tmp_path: Path,
):  # type: ignore[no-untyped-def]
    """Run a flow against a script; returns (result, channel)."""

    async def go(
        flow: str, script: list[Step], variables: dict[str, str] | None = None
    ) -> tuple[FlowResult, ScriptedChannel]:
        runner = FlowRunner(
            actions=actions.registry(),
            clock=clock,
            catalogue=catalogue,
            messages=MessageFolder(tmp_path / "data" / "messages", clock),
            hours=WorkingHours.parse("08:30-17:30", (1, 2, 3, 4, 5), ("2026-12-25",)),
        )
        channel = ScriptedChannel(list(script))
        result = await runner.run(flows[flow], channel, variables)
        assert not channel.script, f"the caller's script was not used up: {channel.script}"
        return result, channel

    return go


CASE_NUMBER_PIECES = [
    "letters/T",
    "letters/S",
    "digits/2",
    "digits/0",
    "digits/2",
    "digits/6",
    "digits/yao",
    "digits/yao",
    "digits/3",
    "digits/0",
    "pieces/dash",
    "digits/0",
    "digits/0",
    "digits/yao",
    "digits/7",
]


def events(result: FlowResult) -> list[tuple[str, str, str]]:
    return [(s.node, s.event, s.detail) for s in result.path if s.event != "enter"]


# --------------------------------------------------------------------------- hotline


async def test_complaint_is_recorded_opened_and_its_number_read_back(run, actions, tmp_path):
    """Key 2 records a complaint under the data folder, opens a case and reads its number twice."""
    result, channel = await run("hotline", [Keys("2"), Speak(9000)])
    assert result.outcome == "completed" and result.node == "goodbye"
    assert actions.args("hotline.open_case") == [
        {"kind": "complaint", "message": channel.recordings[0]}
    ]
    message = Path(channel.recordings[0])
    assert message.is_relative_to(tmp_path / "data" / "messages" / "2026" / "11" / "30")
    assert message.name == "1764468000.1-complaint-1.wav"  # the file as the PBX wrote it
    assert not message.is_relative_to(ROOT)
    prompts = channel.prompts
    start = prompts.index("hotline/case_number") + 1
    assert prompts[start : start + len(CASE_NUMBER_PIECES)] == CASE_NUMBER_PIECES
    assert prompts.count("pieces/dash") == 2
    assert prompts[-1] == "hotline/goodbye" and channel.calls[-1] == ("hangup", "")
    assert result.nodes == (
        "welcome",
        "main_menu",
        "complaint",
        "open_complaint",
        "read_case_number",
        "goodbye",
    )
    assert result.keys == "2"
    assert result.variables["case_number"] == "TS20261130-0017"


async def test_suggestion_opens_a_suggestion_case(run, actions):
    """Key 3 records a suggestion and opens a suggestion case."""
    result, channel = await run("hotline", [Keys("3"), Speak(4000)])
    assert result.outcome == "completed"
    assert actions.args("hotline.open_case") == [
        {"kind": "suggestion", "message": channel.recordings[0]}
    ]
    assert "hotline/suggestion_intro" in channel.prompts


async def test_consultation_plays_the_items_then_queues_for_an_agent(run):
    """Key 1 plays the main items, then hands the caller to the hotline queue."""
    result, channel = await run("hotline", [Keys("1"), HangUp()])
    assert result.outcome == "transferred" and result.queue == "hotline"
    assert result.node == "agent"
    assert channel.prompts[-2:] == ["hotline/consult_items", "hotline/to_agent"]
    assert ("exec", "Queue(hotline,,,,180)") in channel.calls


async def test_no_agent_in_time_takes_a_voice_message(run, actions):
    """When the queue gives up, the caller leaves a message that becomes a case."""
    result, channel = await run("hotline", [Keys("0"), QueueEnds(0), Speak(3000)])
    assert result.outcome == "completed"
    assert "hotline/agents_busy" in channel.prompts
    assert actions.args("hotline.open_case")[0]["kind"] == "message"
    assert [e for e in events(result) if e[1].startswith("queue")] == [
        ("agent", "queue", "hotline"),
        ("agent", "queue_left", "0"),
    ]


async def test_status_of_a_booking_is_read_from_the_store(run, actions):
    """Key 4 takes a number ended by #, looks it up and says its status."""
    result, channel = await run("hotline", [Keys("4"), Keys("202611300012"), Keys("2"), HangUp()])
    assert actions.args("hotline.lookup_status") == [{"number": "202611300012"}]
    assert "status/ready" in channel.prompts
    assert result.outcome == "hung_up" and result.node == "main_menu"
    assert result.keys == "42026113000122"


async def test_a_number_that_does_not_exist_is_said_so(run, actions):
    """An unknown booking or case number is answered 'not found', then the caller may leave."""
    actions.outcomes["hotline.lookup_status"] = ActionResult("not_found")
    result, channel = await run("hotline", [Keys("4"), Keys("999999"), SILENCE, SILENCE])
    assert "hotline/status_not_found" in channel.prompts
    assert result.outcome == "completed" and result.node == "goodbye"


async def test_a_status_without_a_recording_falls_back_to_a_generic_one(run, actions):
    """A status code with no prompt is said with status/unknown, not skipped."""
    actions.outcomes["hotline.lookup_status"] = ActionResult("found", {"status": "frozen"})
    _, channel = await run("hotline", [Keys("4"), Keys("123456"), HangUp()])
    assert "status/unknown" in channel.prompts


CASE_TOLD = ActionResult(
    "told",
    {"case_state": "case_in_progress", "case_unit": "LZ-DC-01", "case_deadline": "2026-12-07"},
)


async def test_a_case_is_told_with_its_unit_and_deadline(run, actions):
    """A case of this caller: its state, owner unit and answer deadline, then the next menu."""
    actions.outcomes["hotline.case_status"] = CASE_TOLD
    _, channel = await run("hotline", [Keys("4"), Keys("202611300012"), HangUp()])
    said = channel.prompts[channel.prompts.index("hotline/case_intro") :]
    assert said == [
        "hotline/case_intro", "status/case_in_progress", "hotline/case_unit", "unit/LZ-DC-01",
        "hotline/case_deadline", "pieces/shi", "digits/2", "pieces/yue", "digits/7", "pieces/hao",
        "hotline/status_next",
    ]  # fmt: skip
    assert actions.args("hotline.case_status") == [{"number": "202611300012"}]
    assert actions.args("hotline.lookup_status") == []  # a case is not looked up as a business


async def test_an_answered_case_without_owner_or_deadline_says_only_its_state(run, actions):
    """No owner and no deadline (answered): only the state is said."""
    actions.outcomes["hotline.case_status"] = ActionResult(
        "told", {"case_state": "case_resolved", "case_unit": "", "case_deadline": ""}
    )
    _, channel = await run("hotline", [Keys("4"), Keys("202611300012"), HangUp()])
    said = channel.prompts[channel.prompts.index("hotline/case_intro") :]
    assert said == ["hotline/case_intro", "status/case_resolved", "hotline/status_next"]


async def test_another_callers_case_asks_the_pin_first(run, actions):
    """A case of another number: the PIN is asked, and the state is told only after it."""
    actions.outcomes["hotline.case_status"] = ActionResult("needs_pin")
    actions.outcomes["hotline.case_status_pin"] = CASE_TOLD
    _, channel = await run("hotline", [Keys("4"), Keys("202611300012"), Keys("042917"), HangUp()])
    prompts = channel.prompts
    assert prompts.index("hotline/case_pin_enter") < prompts.index("status/case_in_progress")
    assert actions.args("hotline.case_status_pin") == [{"number": "202611300012", "pin": "042917"}]


@pytest.mark.parametrize(
    ("outcome", "prompt"),
    [("wrong_pin", "hotline/case_pin_wrong"), ("locked", "hotline/case_pin_locked")],
)
async def test_a_wrong_or_locked_pin_tells_nothing_of_the_case(run, actions, outcome, prompt):
    """A wrong PIN (or a locked one) is said so; no state, unit or deadline is heard."""
    actions.outcomes["hotline.case_status"] = ActionResult("needs_pin")
    actions.outcomes["hotline.case_status_pin"] = ActionResult(outcome)
    _, channel = await run("hotline", [Keys("4"), Keys("202611300012"), Keys("111111"), HangUp()])
    assert prompt in channel.prompts
    assert not [p for p in channel.prompts if p.startswith(("status/", "unit/", "hotline/case_i"))]
    assert channel.prompts[-1] == "hotline/status_next"


async def test_a_short_pin_is_asked_again(run, actions):
    """A PIN of fewer than six digits is a wrong entry: asked again, then checked."""
    actions.outcomes["hotline.case_status"] = ActionResult("needs_pin")
    actions.outcomes["hotline.case_status_pin"] = CASE_TOLD
    _, channel = await run(
        "hotline", [Keys("4"), Keys("202611300012"), Keys("123"), Keys("123456"), HangUp()]
    )
    assert channel.prompts.count("hotline/case_pin_invalid") == 1
    assert actions.args("hotline.case_status_pin") == [{"number": "202611300012", "pin": "123456"}]


async def test_number_entry_retries_short_numbers_and_restarts_on_star(run, actions):
    """Too few digits count as a wrong entry; '*' starts the entry again without counting."""
    result, channel = await run(
        "hotline", [Keys("4"), Keys("123"), Keys("12*"), Keys("123456"), HangUp()]
    )
    assert actions.args("hotline.lookup_status") == [{"number": "123456"}]
    assert channel.prompts.count("hotline/status_invalid") == 1
    assert [e[1] for e in events(result) if e[0] == "status_number"] == [
        "invalid",
        "repeat",
        "digits",
    ]


async def test_number_entry_gives_up_to_an_agent(run):
    """Three failed number entries (silence, '#' alone, silence) hand the caller to an agent."""
    result, channel = await run("hotline", [Keys("4"), SILENCE, Keys(""), SILENCE, HangUp()])
    assert channel.prompts.count("hotline/status_enter") == 3
    assert channel.prompts.count("hotline/status_silence") == 1
    assert channel.prompts.count("hotline/status_invalid") == 1
    assert result.outcome == "transferred"


async def test_wrong_keys_retry_twice_then_an_agent(run):
    """Keys not in the menu are refused twice with a prompt; the third sends to an agent."""
    result, channel = await run("hotline", [Keys("9"), Keys("7"), Keys("5"), HangUp()])
    assert channel.prompts.count("hotline/invalid") == 2
    assert channel.prompts.count("hotline/main_menu") == 3
    assert [e[1:] for e in events(result) if e[0] == "main_menu"] == [
        ("invalid", "9"),
        ("invalid", "7"),
        ("invalid", "5"),
        ("exhausted", ""),
    ]
    assert result.outcome == "transferred"


async def test_silence_to_the_end(run, actions):
    """A caller who never presses nor says anything is queued, then let go without a case."""
    result, channel = await run(
        "hotline",
        [SILENCE, SILENCE, SILENCE, QueueEnds(0), Speak(0, "silence"), Speak(300, "silence")],
    )
    assert channel.prompts.count("hotline/silence") == 2
    assert channel.prompts.count("hotline/message_empty") == 1
    assert actions.calls == []
    assert result.outcome == "completed" and result.node == "goodbye"
    assert [e[1] for e in events(result) if e[0] == "agents_busy"] == [
        "empty_recording",
        "empty_recording",
        "exhausted",
    ]


async def test_star_repeats_the_menu_without_using_a_retry(run):
    """'*' replays the menu and does not count against the two retries."""
    result, channel = await run(
        "hotline", [Keys("*"), Keys("9"), Keys("*"), Keys("8"), Keys("1"), HangUp()]
    )
    assert channel.prompts.count("hotline/main_menu") == 5
    assert "hotline/consult_items" in channel.prompts
    assert result.keys == "*9*81"


async def test_star_pressed_forever_counts_as_wrong_keys(run):
    """After three repeats, '*' counts as a wrong key so a call cannot loop for ever."""
    result, _ = await run("hotline", [Keys("*")] * 6 + [HangUp()])
    assert [e[1] for e in events(result) if e[0] == "main_menu"] == [
        "repeat",
        "repeat",
        "repeat",
        "invalid",
        "invalid",
        "invalid",
        "exhausted",
    ]


async def test_hash_alone_is_an_empty_wrong_answer(run):
    """'#' alone in a menu is treated as a wrong key and retried."""
    result, _channel = await run("hotline", [Keys(""), Keys("2"), Speak(2000)])
    assert ("main_menu", "invalid", "#") in events(result)
    assert result.outcome == "completed"


async def test_after_hours_the_caller_leaves_a_voice_message(run, actions, clock):
    """Outside working hours (local time) key 0 takes a voice message instead of the queue."""
    clock.advance(11 * 3600)  # 21:00 in Shanghai
    result, channel = await run("hotline", [Keys("0"), Speak(6000)])
    assert "hotline/after_hours" in channel.prompts
    assert not any(call == "exec" for call, _ in channel.calls)
    assert actions.args("hotline.open_case")[0]["kind"] == "message"
    assert result.outcome == "completed"


async def test_a_holiday_is_outside_working_hours(run, clock):
    """A configured holiday sends key 0 to the voice message even at 10:00."""
    clock.advance(25 * 86400)  # 2026-12-25, a Friday
    _, channel = await run("hotline", [Keys("0"), HangUp()])
    assert "hotline/after_hours" in channel.prompts


async def test_a_failed_case_opening_hands_the_caller_to_an_agent(run, actions):
    """If the case cannot be opened the caller is told so and queued; nothing is lost."""
    actions.outcomes["hotline.open_case"] = ActionResult("failed")
    result, channel = await run("hotline", [Keys("2"), Speak(5000), HangUp()])
    assert "hotline/case_failed" in channel.prompts
    assert result.outcome == "transferred"
    # the hang-up tail tries once more to keep the complaint
    assert [a["kind"] for a in actions.args("hotline.open_case")] == ["complaint", "complaint"]


@pytest.mark.parametrize(
    ("script", "node", "kind"),
    [
        ([HangUp("hotline/welcome")], "welcome", "play"),
        ([HangUp()], "main_menu", "menu"),
        ([Keys("4"), HangUp()], "status_number", "collect"),
        ([Keys("2"), HangUp()], "complaint", "record"),
        ([Keys("4"), Keys("123456"), HangUp("status/ready")], "status_found", "play"),
        ([Keys("2"), Speak(3000), HangUp("hotline/remember")], "read_case_number", "play"),
        ([Keys("3"), Speak(3000), HangUp("hotline/goodbye")], "goodbye", "hangup"),
    ],
)
async def test_a_hang_up_anywhere_ends_the_flow_cleanly(run, script, node, kind):
    """A caller hanging up during a prompt, menu, number entry or recording ends at that node."""
    result, channel = await run("hotline", script)
    assert result.outcome == "hung_up"
    assert result.node == node
    assert result.path[-1].event == "caller_hangup" or result.path[-1].node == "ended"
    assert ("hangup", "") not in channel.calls  # the engine does not touch a dead channel
    assert [s.node for s in result.path if s.event == "enter"][-1] in (node, "ended")
    assert kind in {s.detail for s in result.path if s.event == "enter" and s.node == node}


async def test_hanging_up_while_waiting_in_the_queue_is_a_transfer(run):
    """A caller who hangs up in the queue ended as transferred to that queue."""
    result, _ = await run("hotline", [Keys("0"), HangUp()])
    assert (result.outcome, result.node, result.queue) == ("transferred", "agent", "hotline")


async def test_a_seat_that_hangs_up_first_leads_to_goodbye_not_a_second_queue(run):
    """Queue answering -1 with the caller still there (a seat took the call and hung up
    first) goes on to the flow's goodbye and hangs up: no second queueing."""
    result, channel = await run("hotline", [Keys("0"), QueueEnds(-1)])
    assert (result.outcome, result.node) == ("completed", "goodbye")
    assert [c for c in channel.calls if c[0] == "exec"] == [("exec", "Queue(hotline,,,,180)")]
    assert ("agent", "queue_answered", "") in events(result)
    assert channel.prompts[-1] == "hotline/goodbye" and channel.calls[-1] == ("hangup", "")


async def test_a_message_the_pbx_cannot_write_sends_the_caller_to_a_seat(run, actions):
    """A recording the PBX could not write opens no case: the caller hears so and is queued."""
    result, channel = await run("hotline", [Keys("2"), Speak(0, "failed"), HangUp()])
    assert actions.calls == []
    assert channel.prompts[-1] == "hotline/case_failed"
    assert ("exec", "Queue(hotline,,,,180)") in channel.calls
    [failed] = [e for e in events(result) if e[1] == "record_failed"]
    assert failed[0] == "complaint" and failed[2].endswith("-complaint-1.wav")
    assert result.outcome == "transferred"


async def test_after_hours_a_message_the_pbx_cannot_write_ends_politely(run, actions, clock):
    """After hours there is no seat: a failed recording ends with 'cannot save your message'."""
    clock.advance(11 * 3600)  # 21:00 in Shanghai
    result, channel = await run("hotline", [Keys("0"), Speak(0, "failed")])
    assert actions.calls == []
    assert (result.outcome, result.node) == ("completed", "message_failed")
    assert channel.prompts[-1] == "hotline/message_failed"


async def test_pieces_of_a_prompt_play_as_one_command(run):
    """The case number read back (about 35 pieces) is one Playback, not a command per piece."""
    _, channel = await run("hotline", [Keys("2"), Speak(9000)])
    [read_back] = channel.playbacks
    assert read_back[:2] == ("hotline/case_opened", "hotline/case_number")
    assert read_back[2 : 2 + len(CASE_NUMBER_PIECES)] == tuple(CASE_NUMBER_PIECES)
    assert read_back[-1] == "hotline/remember"
    assert not [c for c in channel.calls if c[0] == "stream_file" and c[1] in read_back]


async def test_the_link_dropping_is_not_written_as_the_caller_hanging_up(run):
    """A link lost mid-menu ends the run as link_lost, noted as such, never as caller_hangup."""
    result, _ = await run("hotline", [LinkDrops()])
    assert (result.outcome, result.node) == ("link_lost", "main_menu")
    kinds = [e[1] for e in events(result)]
    assert "link_lost" in kinds and "caller_hangup" not in kinds


async def test_a_message_ended_by_hanging_up_still_becomes_a_case(run, actions):
    """Hanging up instead of pressing # keeps the complaint: the hang-up tail opens the case."""
    result, channel = await run("hotline", [Keys("2"), Speak(12000, "hangup")])
    assert result.outcome == "hung_up" and result.node == "complaint"
    assert actions.args("hotline.open_case") == [
        {"kind": "complaint", "message": channel.recordings[0]}
    ]
    assert result.variables["case_number"] == "TS20261130-0017"
    assert not any(call == "hangup" for call, _ in channel.calls)


async def test_an_empty_message_ended_by_hanging_up_opens_nothing(run, actions):
    """A zero-length recording ended by hang-up leaves no case behind."""
    result, _ = await run("hotline", [Keys("3"), Speak(0, "hangup")])
    assert result.outcome == "hung_up" and actions.calls == []
    assert ("suggestion", "empty_recording", "0ms hangup") in events(result)


async def test_a_case_opened_before_the_hang_up_is_not_opened_twice(run, actions):
    """The hang-up tail does nothing when the case number was already given."""
    await run("hotline", [Keys("2"), Speak(3000), HangUp("hotline/case_number")])
    assert len(actions.calls) == 1


async def test_an_action_that_raises_ends_the_flow_with_an_error(run, actions):
    """A domain action that fails unexpectedly ends the run as an error naming the node."""
    actions.raises["hotline.open_case"] = RuntimeError("disk full")
    result, _ = await run("hotline", [Keys("2"), Speak(3000)])
    assert result.outcome == "error" and result.node == "open_complaint"
    assert "open_complaint" in (result.error or "") and "disk full" in (result.error or "")


async def test_a_pbx_error_ends_the_flow_with_an_error(run, flows, catalogue, clock, tmp_path):
    """An AGI command refused by the PBX ends the run as an error, not a crash."""

    class Refusing(ScriptedChannel):
        async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
            raise AgiCommandFailed(self.name, "GET DATA", 510, "Invalid or unknown command")

    runner = FlowRunner(FakeActions().registry(), clock, catalogue, MessageFolder(tmp_path, clock))
    result = await runner.run(flows["hotline"], Refusing([]))
    assert result.outcome == "error" and result.node == "main_menu"
    assert "510" in (result.error or "")


async def test_an_action_without_an_implementation_is_an_error(flows, catalogue, clock, tmp_path):
    """A flow calling an action nobody registered stops with an error naming it."""
    runner = FlowRunner(
        FakeActions().registry("hotline.lookup_status"),
        clock,
        catalogue,
        MessageFolder(tmp_path, clock),
    )
    result = await runner.run(flows["hotline"], ScriptedChannel([Keys("2"), Speak(3000)]))
    assert result.outcome == "error"
    assert "hotline.open_case" in (result.error or "")


async def test_the_path_carries_the_clock_time(run, clock):
    """Each step of the path is stamped by the injected clock."""
    result, _ = await run("hotline", [HangUp()])
    assert {s.at for s in result.path} == {clock.now()}
    assert result.started_at == result.ended_at == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- survey

SERVED = {"unit": "LZ-DC-01", "kind": "id_card", "served_on": "2026-11-28"}


async def test_survey_names_the_unit_business_and_date_then_records_satisfied(run, actions):
    """The greeting says 11月28号, the station and the business; key 1 is stored as satisfied."""
    result, channel = await run("survey", [Keys("1")], SERVED)
    assert channel.prompts[:12] == [
        "survey/greeting",
        "survey/you_on",
        "pieces/shi",
        "digits/1",
        "pieces/yue",
        "digits/2",
        "pieces/shi",
        "digits/8",
        "pieces/hao",
        "survey/at",
        "unit/LZ-DC-01",
        "survey/handled",
    ]
    assert channel.prompts[12:15] == ["kind/id_card", "survey/business", "survey/rate"]
    # the 14 pieces of the question are one Read, answerable from its first piece
    assert channel.readings == [tuple(channel.prompts[1:15])]
    assert actions.args("survey.record_rating") == [{"rating": "1"}]
    assert actions.args("survey.record_reason") == []
    assert (result.outcome, result.node) == ("completed", "thanks")


async def test_survey_takes_a_key_pressed_during_the_greeting(run, actions):
    """A citizen who presses 2 while the business is being named is not made to wait."""
    result, channel = await run("survey", [Interrupt("2")], SERVED)
    assert "survey/rate" not in channel.prompts
    assert actions.args("survey.record_rating") == [{"rating": "2"}]
    assert result.node == "thanks"


async def test_dissatisfied_asks_the_reason_and_a_message(run, actions):
    """Key 3 asks why by key and records a short message, both stored with the rating."""
    result, channel = await run("survey", [Keys("3"), Keys("2"), Speak(7000)], SERVED)
    assert actions.args("survey.record_rating") == [{"rating": "3"}]
    assert actions.args("survey.record_reason") == [
        {"reason": "2", "message": channel.recordings[0]}
    ]
    assert (result.outcome, result.node) == ("completed", "thanks_dissatisfied")


async def test_dissatisfied_without_a_reason_or_message(run, actions):
    """No reason key and an empty message still store the rating and an empty reason."""
    result, _ = await run("survey", [Keys("3"), SILENCE, SILENCE, SILENCE, Speak(0)], SERVED)
    assert actions.args("survey.record_reason") == [{"reason": "", "message": ""}]
    assert result.node == "thanks_dissatisfied"


async def test_survey_reasks_on_silence_and_wrong_keys(run, actions):
    """Silence and a wrong key are re-asked; the third answer still counts."""
    _, channel = await run("survey", [SILENCE, Keys("7"), Keys("2")], SERVED)
    assert channel.prompts.count("survey/silence") == 1
    assert channel.prompts.count("survey/invalid") == 1
    assert actions.args("survey.record_rating") == [{"rating": "2"}]


async def test_survey_without_an_answer_stores_no_rating(run, actions):
    """Three silences end the call politely with no rating recorded."""
    result, _channel = await run("survey", [SILENCE, SILENCE, SILENCE], SERVED)
    assert actions.calls == []
    assert "rating" not in result.variables
    assert (result.outcome, result.node) == ("completed", "no_rating")


async def test_hang_up_before_the_rating_is_an_attempt_without_rating(run, actions):
    """A citizen who hangs up during the greeting leaves no rating and no action call."""
    result, _ = await run("survey", [HangUp("unit/LZ-DC-01")], SERVED)
    assert (result.outcome, result.node) == ("hung_up", "rate")
    assert "rating" not in result.variables and actions.calls == []


async def test_hang_up_during_the_message_keeps_rating_reason_and_message(run, actions):
    """Hanging up while leaving the message still stores the reason with what was said."""
    result, channel = await run("survey", [Keys("3"), Keys("4"), Speak(5000, "hangup")], SERVED)
    assert result.outcome == "hung_up" and result.node == "leave_message"
    assert actions.args("survey.record_reason") == [
        {"reason": "4", "message": channel.recordings[0]}
    ]


async def test_survey_says_unknown_names_with_generic_prompts(run):
    """A unit or business without a recording is said generically; a bad date is skipped."""
    result, channel = await run(
        "survey", [Keys("1")], {"unit": "XX-99", "kind": "", "served_on": "yesterday"}
    )
    assert "unit/generic" in channel.prompts and "kind/generic" in channel.prompts
    assert "pieces/yue" not in channel.prompts
    assert any(s.event == "say_failed" for s in result.path)
    assert result.outcome == "completed"


async def test_message_paths_are_absolute_for_the_pbx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative data folder still gives the PBX an absolute path to record to
    (Asterisk would put a relative one under its own sounds folder)."""
    monkeypatch.chdir(tmp_path)
    clock = ManualClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))
    folder = MessageFolder(Path("gateway-data") / "messages", clock)
    path = Path(await folder.path_for("1795.7", "complaint", 1))
    assert path.is_absolute()
    assert path.parent.is_dir() and path.is_relative_to(tmp_path / "gateway-data" / "messages")
