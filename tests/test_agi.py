"""AsyncAGI parsing and command text: the environment, results, quoting."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ami import agi
from gateway.ami.agi import AgiArgumentError, AgiParseError, AgiResult
from gateway.ami.frames import Frame, iter_frames

# -- results -------------------------------------------------------------------

RESULTS = [
    # (decoded reply, code, result, data, endpos, hangup, digit)
    ("200 result=49", 200, "49", "", None, False, "1"),
    ("200 result=0", 200, "0", "", None, False, None),
    # -1 alone is not a hang-up: EXEC Queue answers it with the caller still Up
    ("200 result=-1", 200, "-1", "", None, False, None),
    ("200 result=-1 (writefile)", 200, "-1", "writefile", None, False, None),
    ("200 result= (timeout)", 200, "", "timeout", None, False, None),
    ("200 result=1 endpos=1234", 200, "1", "", 1234, False, "\x01"),
    ("200 result=35 (dtmf) endpos=8000", 200, "35", "dtmf", 8000, False, "#"),
    ("200 result=0 (timeout) endpos=16000", 200, "0", "timeout", 16000, False, None),
    ("200 result=-1 (hangup) endpos=400", 200, "-1", "hangup", 400, True, None),
    ("200 result=0123", 200, "0123", "", None, False, "{"),
    ("200 result=12 (timeout)", 200, "12", "timeout", None, False, "\x0c"),
    (
        "200 result=1 (Local/s@caller-sim-00000002;1)",
        200,
        "1",
        "Local/s@caller-sim-00000002;1",
        None,
        False,
        "\x01",
    ),
    ("200 result=1 (a (nested) value)", 200, "1", "a (nested) value", None, False, "\x01"),
    (
        "511 Command Not Permitted on a dead channel or intercept routine",
        511,
        "",
        "",
        None,
        True,
        None,
    ),
    ("510 Invalid or unknown command", 510, "", "", None, False, None),
]


@pytest.mark.parametrize(("text", "code", "result", "data", "endpos", "hangup", "digit"), RESULTS)
def test_result_table(
    text: str,
    code: int,
    result: str,
    data: str,
    endpos: int | None,
    hangup: bool,
    digit: str | None,
) -> None:
    """Each AGI reply shape parses into its code, raw result, data, endpos and meaning."""
    parsed = agi.parse_result_text(text + "\n")
    assert (parsed.code, parsed.result, parsed.data, parsed.endpos) == (code, result, data, endpos)
    assert parsed.is_hangup is hangup
    assert parsed.digit == digit


def test_get_data_keeps_leading_zero() -> None:
    """GET DATA digits stay a string: "0123" is not the number 123."""
    assert agi.parse_result_text("200 result=0123\n").result == "0123"


def test_error_text_is_kept() -> None:
    """510/511 replies keep their message as text and are not ok."""
    parsed = agi.parse_result_text("510 Invalid or unknown command\n")
    assert not parsed.ok
    assert parsed.text == "Invalid or unknown command"


def test_text_does_not_repeat_the_code() -> None:
    """A reply's text is what follows its code, so an error naming code and text says 200 once."""
    parsed = agi.parse_result_text("200 result=-1 (writefile)\n")
    assert parsed.text == "result=-1 (writefile)"
    assert parsed.write_failed and not parsed.is_hangup
    assert not agi.parse_result_text("200 result=-1 (hangup) endpos=0\n").write_failed


def test_results_asterisk_22_sent_to_the_gateway() -> None:
    """As a real Asterisk 22 sent them (the gateway's own session beside it): EXEC Queue's -1
    after the seat hung up and RECORD FILE's (writefile) are no hang-up; (hangup) is."""
    queue = agi.parse_result("200%20result%3D-1%0A")  # then CHANNEL STATUS: 6
    assert (queue.value, queue.is_hangup, queue.write_failed) == (-1, False, False)
    assert agi.parse_result("200%20result%3D6%0A").value == agi.CHANNEL_STATE_UP
    write = agi.parse_result("200%20result%3D-1%20(writefile)%0A")
    assert write.write_failed and not write.is_hangup
    hangup = agi.parse_result("200%20result%3D-1%20(hangup)%20endpos%3D63978%0A")
    assert hangup.is_hangup and hangup.endpos == 63978 and not hangup.write_failed


def test_playback_joins_prompts_with_ampersands() -> None:
    """Several prompts become one Playback argument; a name that would split is refused."""
    assert agi.playback_files(["hotline/case_number", "digits/yao"]) == (
        "hotline/case_number&digits/yao"
    )
    for bad in ([], ["a&b"], ["a,b"], [""]):
        with pytest.raises(agi.AgiArgumentError):
            agi.playback_files(bad)


def test_multiline_usage_reply() -> None:
    """A 520 usage reply keeps every line of its text, codes stripped."""
    text = (
        "520-Invalid command syntax.  Proper usage follows:\n"
        " Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n"
        "520 End of proper usage.\n"
    )
    parsed = agi.parse_result_text(text)
    assert parsed.code == 520
    assert parsed.text.splitlines() == [
        "Invalid command syntax.  Proper usage follows:",
        " Usage: GET DATA <file to be streamed> [timeout] [maxdigits]",
        "End of proper usage.",
    ]


def test_url_encoded_result() -> None:
    """The Result header of AsyncAGIExec is URL-decoded before parsing."""
    assert agi.parse_result("200%20result%3D49%0A") == AgiResult(200, "49", "", "result=49")
    assert agi.parse_result("200%20result%3D%20(timeout)%0A").timed_out


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "20 result=1",
        "200 something else",
        "200 result=1 (open",
        "2OO x",
        "200 result=1 endpos=abc",
    ],
)
def test_bad_results_name_the_problem(text: str) -> None:
    """An unreadable reply raises AgiParseError carrying the raw text and a reason."""
    with pytest.raises(AgiParseError) as info:
        agi.parse_result_text(text)
    assert info.value.raw == text
    assert info.value.reason


def test_every_recorded_result_parses(transcripts: Path) -> None:
    """Every AsyncAGIExec Result in the real Asterisk recordings parses as a 200 reply."""
    seen = 0
    for path in sorted(transcripts.glob("*.rx.txt")):
        for frame in iter_frames(path.read_bytes()):
            if isinstance(frame, Frame) and frame.event == "AsyncAGIExec":
                result = agi.parse_result(frame["Result"])
                assert result.code == 200, frame
                seen += 1
    assert seen > 800


# -- environment -----------------------------------------------------------------

ENV = (
    "agi_request%3A%20async%0Aagi_channel%3A%20Local%2Fs%40caller-sim-00000002%3B1%0A"
    "agi_language%3A%20en%0Aagi_type%3A%20Local%0Aagi_uniqueid%3A%201795896766.4%0A"
    "agi_version%3A%2022.10.1%0Aagi_callerid%3A%205551234%0Aagi_calleridname%3A%20Sim%20Caller"
    "%0Aagi_callingpres%3A%200%0Aagi_callingani2%3A%200%0Aagi_callington%3A%200%0A"
    "agi_callingtns%3A%200%0Aagi_dnid%3A%20unknown%0Aagi_rdnis%3A%20unknown%0A"
    "agi_context%3A%20hotline%0Aagi_extension%3A%20s%0Aagi_priority%3A%203%0A"
    "agi_enhanced%3A%200.0%0Aagi_accountcode%3A%20%0Aagi_threadid%3A%20140704879142592%0A%0A"
)


def test_env_from_the_recording() -> None:
    """The recorded AsyncAGIStart Env decodes into fields and keeps every key."""
    env = agi.parse_env(ENV)
    assert env.channel == "Local/s@caller-sim-00000002;1"
    assert env.uniqueid == "1795896766.4"
    assert env.callerid == "5551234"
    assert env.calleridname == "Sim Caller"
    assert env.context == "hotline"
    assert env.accountcode == ""
    assert env.dialled_number == "s"  # dnid "unknown" falls back to the extension
    assert env.values["agi_callingani2"] == "0"
    assert len(env.values) == 20


def test_env_chinese_name_and_args() -> None:
    """A UTF-8 caller name survives URL-decoding; agi_arg_N come back in order."""
    from urllib.parse import quote

    text = (
        "agi_channel: PJSIP/trunk-00000001\nagi_calleridname: 张三\nagi_dnid: 12345\n"
        "agi_arg_1: survey\nagi_arg_2: a b\n\n"
    )
    env = agi.parse_env(quote(text))
    assert env.calleridname == "张三"
    assert env.args == ("survey", "a b")
    assert env.dialled_number == "12345"


def test_every_recorded_env_parses(transcripts: Path) -> None:
    """Every AsyncAGIStart Env in the recordings decodes to a channel and a uniqueid."""
    seen = 0
    for path in sorted(transcripts.glob("*.rx.txt")):
        for frame in iter_frames(path.read_bytes()):
            if isinstance(frame, Frame) and frame.event == "AsyncAGIStart":
                env = agi.parse_env(frame["Env"])
                assert env.channel == frame["Channel"]
                assert env.uniqueid == frame["Uniqueid"]
                seen += 1
    assert seen >= 200


@pytest.mark.parametrize("encoded", ["", "%0A%0A", "agi_channel%0A", "no%20colon%20here"])
def test_bad_env_is_refused(encoded: str) -> None:
    """An empty or malformed environment raises AgiParseError."""
    with pytest.raises(AgiParseError):
        agi.parse_env(encoded)


# -- commands ----------------------------------------------------------------------

COMMANDS = [
    (agi.cmd_answer(), "ANSWER"),
    (agi.cmd_hangup(), "HANGUP"),
    (agi.cmd_break(), "ASYNCAGI BREAK"),
    (agi.cmd_stream_file("hotline/welcome"), 'STREAM FILE hotline/welcome ""'),
    (agi.cmd_stream_file("hotline/menu", "123#"), "STREAM FILE hotline/menu 123#"),
    (agi.cmd_stream_file("my prompt"), 'STREAM FILE "my prompt" ""'),
    (agi.cmd_get_data("beep", 5000, 1), "GET DATA beep 5000 1"),
    (agi.cmd_wait_for_digit(5000), "WAIT FOR DIGIT 5000"),
    (agi.cmd_wait_for_digit(-1), "WAIT FOR DIGIT -1"),
    (agi.cmd_record_file("/data/msg/1"), "RECORD FILE /data/msg/1 wav # 60000 BEEP s=5"),
    (agi.cmd_record_file("/data/msg/1", beep=False), "RECORD FILE /data/msg/1 wav # 60000 0 s=5"),
    (agi.cmd_record_file("/d/m", "gsm", "", 1000, False, None), 'RECORD FILE /d/m gsm "" 1000'),
    (agi.cmd_set_variable("CASE_ID", "42"), "SET VARIABLE CASE_ID 42"),
    (agi.cmd_set_variable("EMPTY", ""), 'SET VARIABLE EMPTY ""'),
    (agi.cmd_set_variable("NOTE", 'say "hi" \\ bye'), 'SET VARIABLE NOTE "say \\"hi\\" \\\\ bye"'),
    (agi.cmd_get_variable("GATEWAY_CALL_ID"), "GET VARIABLE GATEWAY_CALL_ID"),
    (agi.cmd_exec("Queue", "hotline,t,,,300"), "EXEC Queue hotline,t,,,300"),
    (agi.cmd_exec("Playback", "a b"), 'EXEC Playback "a b"'),
    (agi.cmd_exec("Wait"), "EXEC Wait"),
]


@pytest.mark.parametrize(("command", "expected"), COMMANDS)
def test_command_text(command: str, expected: str) -> None:
    """Commands are written with Asterisk's quoting; empty digit strings are \"\"."""
    assert command == expected


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: agi.cmd_stream_file("", ""), "prompt"),
        (lambda: agi.cmd_stream_file("x", "12a"), "escape_digits"),
        (lambda: agi.cmd_stream_file("x\nANSWER", ""), "prompt"),
        (lambda: agi.cmd_get_data("x", -5, 1), "timeout_ms"),
        (lambda: agi.cmd_get_data("x", 1000, 0), "max_digits"),
        (lambda: agi.cmd_wait_for_digit(-7), "timeout_ms"),
        (lambda: agi.cmd_record_file("x", "w a v"), "fmt"),
        (lambda: agi.cmd_record_file("x", silence_s=0), "silence_s"),
        (lambda: agi.cmd_set_variable("TWO WORDS", "v"), "name"),
        (lambda: agi.cmd_set_variable("X", "line\r\nAction: Logoff"), "value"),
        (lambda: agi.cmd_exec("", ""), "application"),
    ],
)
def test_bad_arguments_are_refused(build: object, argument: str) -> None:
    """A command argument that cannot travel raises AgiArgumentError naming it."""
    with pytest.raises(AgiArgumentError) as info:
        build()  # type: ignore[operator]
    assert info.value.argument == argument
