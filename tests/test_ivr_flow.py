"""Flow files are checked at load: every mistake names the file, the node and the line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway import cli
from gateway.ivr.errors import FlowError
from gateway.ivr.flow import MenuNode, parse_flow
from gateway.ivr.prompts import PromptCatalogue, load_catalogue, parse_catalogue

ROOT = Path(__file__).resolve().parent.parent

CATALOGUE = PromptCatalogue({"t/hello": "你好", "t/menu": "请按键", "t/bye": "再见"})

GOOD = """\
name: demo
start: hello
nodes:
  hello:
    kind: play
    prompt: t/hello
    next: menu
  menu:
    kind: menu
    prompt: t/menu
    choices:
      1: bye
      2: hello
    on_exhausted: bye
  bye:
    kind: hangup
    prompt: t/bye
"""


def problems(text: str, file: str = "flows/bad.yaml") -> list[str]:
    with pytest.raises(FlowError) as caught:
        parse_flow(textwrap.dedent(text), file, CATALOGUE)
    assert caught.value.file == file
    assert file in str(caught.value)
    return [str(p) for p in caught.value.problems]


def test_a_good_flow_loads():
    """A correct flow loads with its nodes, choices as text keys and defaults filled in."""
    flow = parse_flow(GOOD, "flows/demo.yaml", CATALOGUE)
    assert flow.name == "demo" and list(flow.nodes) == ["hello", "menu", "bye"]
    menu = flow.nodes["menu"]
    assert isinstance(menu, MenuNode)
    assert menu.choices == {"1": "bye", "2": "hello"}
    assert (menu.timeout, menu.retries, menu.line) == (5.0, 2, 8)


def test_the_shipped_flows_load():
    """flows/hotline.yaml and flows/survey.yaml load against the real prompt catalogue."""
    catalogue = load_catalogue(ROOT / "recordings" / "prompts.yaml")
    for name in ("hotline", "survey"):
        flow = parse_flow((ROOT / "flows" / f"{name}.yaml").read_text("utf-8"), name, catalogue)
        assert flow.name == name


def test_a_missing_node_is_named():
    """A reference to a node that does not exist names the referring node and field."""
    found = problems(GOOD.replace("on_exhausted: bye", "on_exhausted: agent"))
    assert found == [
        "flows/bad.yaml:8: node 'menu': on_exhausted goes to node 'agent', which does not exist"
    ]


def test_a_missing_start_node_is_named():
    """A start that names no node is reported for the flow."""
    assert problems(GOOD.replace("start: hello", "start: welcome")) == [
        "flows/bad.yaml:2: start node 'welcome' does not exist"
    ]


def test_a_node_nobody_reaches_is_named():
    """A node no path from the start reaches is an error naming it."""
    text = GOOD + "  orphan:\n    kind: hangup\n"
    assert problems(text) == [
        "flows/bad.yaml:18: node 'orphan': no path from the start reaches this node"
    ]


def test_a_loop_with_no_way_out_is_named():
    """Nodes that can never reach a hang-up or a queue are reported as a loop."""
    text = GOOD.replace("      1: bye\n", "      1: spin\n").replace(
        "    on_exhausted: bye", "    on_exhausted: spin"
    ) + textwrap.indent(
        textwrap.dedent("""\
        spin:
          kind: play
          prompt: t/hello
          next: spin2
        spin2:
          kind: play
          prompt: t/bye
          next: spin
    """),
        "  ",
    )
    found = problems(text)
    assert any("node 'spin': loop with no way out: spin → spin2" in p for p in found)
    assert any("node 'bye': no path from the start" in p for p in found)


def test_a_self_loop_with_no_way_out_is_named():
    """A node going only to itself is a loop with no way out."""
    text = GOOD.replace("    next: menu", "    next: hello")
    found = problems(text)
    assert (
        "flows/bad.yaml:4: node 'hello': loop with no way out: hello never reach a hangup "
        "or queue node" in found
    )


def test_an_unknown_prompt_is_named():
    """A prompt missing from the catalogue names the node, the field and the prompt."""
    assert problems(GOOD.replace("prompt: t/bye", "prompt: t/goodbye")) == [
        "flows/bad.yaml:17: node 'bye': prompt: unknown prompt 't/goodbye' "
        "(not in the prompt catalogue)"
    ]


def test_a_key_used_twice_is_named():
    """YAML would silently keep one of two equal menu keys; the loader refuses both lines."""
    text = GOOD.replace("      2: hello\n", "      2: hello\n      1: hello\n")
    assert problems(text) == [
        "flows/bad.yaml:14: node 'menu': key 1 is used twice (lines 12 and 14)"
    ]


def test_a_key_written_as_text_and_number_is_used_twice():
    """'1' and 1 are the same key on a phone."""
    text = GOOD.replace("      2: hello\n", "      2: hello\n      '1': hello\n")
    assert problems(text) == ["flows/bad.yaml:14: node 'menu': choices: key '1' is used twice"]


def test_a_node_defined_twice_is_named():
    """Two nodes of one name are reported with both lines."""
    text = GOOD + "  bye:\n    kind: hangup\n"
    assert problems(text) == [
        "flows/bad.yaml:18: node 'bye': node 'bye' is defined twice (lines 15 and 18)"
    ]


def test_star_and_hash_cannot_be_menu_keys():
    """'*' repeats and '#' ends input, so a menu may not give them a node."""
    text = GOOD.replace("      2: hello\n", "      2: hello\n      '*': hello\n")
    found = problems(text)
    assert found == [
        "flows/bad.yaml:14: node 'menu': choices: key '*' is not a single digit "
        "0-9 ('*' repeats the menu, '#' ends input)"
    ]


def test_an_unknown_kind_is_named():
    """A node of a kind the engine does not know is reported with the known kinds."""
    found = problems(GOOD.replace("kind: hangup", "kind: transfer"))
    assert found[0].startswith("flows/bad.yaml:15: node 'bye': unknown kind 'transfer' (known: ")


def test_an_unknown_field_is_named():
    """A misspelt field is not ignored."""
    found = problems(GOOD.replace("    on_exhausted: bye", "    on_exhausted: bye\n    retry: 3"))
    assert found[0].startswith(
        "flows/bad.yaml:15: node 'menu': unknown field 'retry' for a menu node"
    )


def test_a_missing_field_is_named():
    """A node without a required field lists what its kind needs."""
    found = problems(GOOD.replace("    on_exhausted: bye\n", ""))
    assert found == [
        "flows/bad.yaml:8: node 'menu': missing field 'on_exhausted' (a menu node "
        "needs prompt, choices, on_exhausted)"
    ]


def test_a_wrong_value_is_named():
    """A value of the wrong type or range names the field and the value."""
    text = GOOD.replace("    on_exhausted: bye", "    on_exhausted: bye\n    retries: -1")
    found = problems(text)
    assert found == [
        "flows/bad.yaml:15: node 'menu': retries must be a whole number from 0 to 9, got -1"
    ]


ACTION_FLOW = """\
name: demo
start: act
nodes:
  act:
    kind: action
    action: hotline.lookup_status
    args: {number: $caller_number}
    next: {found: bye, not_found: bye}
  bye:
    kind: hangup
"""


def test_an_action_flow_loads():
    """A declared action with its arguments and every outcome loads."""
    assert parse_flow(ACTION_FLOW, "a.yaml", CATALOGUE).nodes["act"].kind == "action"


def test_an_unknown_action_is_named():
    """An action that is not declared is refused with the known ones."""
    found = problems(ACTION_FLOW.replace("hotline.lookup_status", "hotline.teleport"))
    assert found[0].startswith("flows/bad.yaml:4: node 'act': unknown action 'hotline.teleport'")


def test_action_arguments_and_outcomes_must_match_the_declaration():
    """A missing outcome, an unknown outcome and a wrong argument are each named."""
    text = ACTION_FLOW.replace("{number: $caller_number}", "{num: $caller_number}").replace(
        "{found: bye, not_found: bye}", "{found: bye, missing: bye}"
    )
    assert problems(text) == [
        "flows/bad.yaml:4: node 'act': action hotline.lookup_status takes no argument 'num' "
        "(it takes: number)",
        "flows/bad.yaml:4: node 'act': action hotline.lookup_status needs argument 'number'",
        "flows/bad.yaml:4: node 'act': action hotline.lookup_status has no outcome 'missing' "
        "(its outcomes: found, not_found)",
        "flows/bad.yaml:4: node 'act': next does not say where to go when "
        "hotline.lookup_status is 'not_found'",
    ]


def test_a_variable_nobody_sets_is_named():
    """Saying or passing a variable that no node, action or input sets is an error."""
    found = problems(ACTION_FLOW.replace("$caller_number", "$booking"))
    assert found == [
        "flows/bad.yaml:4: node 'act': variable 'booking' is never set (set it with "
        "into, an action's result, or list it in the flow's inputs)"
    ]


def test_the_hang_up_tail_may_not_use_the_channel():
    """on_hangup may only reach actions, branches and hang-ups: the caller is gone."""
    text = GOOD.replace("start: hello", "start: hello\non_hangup: menu")
    found = problems(text)
    assert any("node 'menu': a menu node cannot run after the caller hung up" in p for p in found)


def test_a_branch_needs_known_conditions():
    """A branch condition the engine does not know is named."""
    text = GOOD.replace("    next: menu", "    next: check") + textwrap.indent(
        "check:\n  kind: branch\n  when:\n    - weekday: 1\n      goto: menu\n  otherwise: menu\n",
        "  ",
    )
    found = problems(text)
    assert found == [
        "flows/bad.yaml:21: node 'check': when: unknown condition ['weekday'] "
        "(use working_hours, set, unset, or var with equals)"
    ]


def test_a_collect_with_min_above_max_is_named():
    """A number entry whose minimum length is above its maximum cannot be satisfied."""
    text = GOOD.replace("    next: menu", "    next: num") + textwrap.indent(
        "num:\n  kind: collect\n  prompt: t/menu\n  min_digits: 8\n  max_digits: 6\n"
        "  into: n\n  next: menu\n  on_exhausted: bye\n",
        "  ",
    )
    assert problems(text) == ["flows/bad.yaml:18: node 'num': min_digits 8 is above max_digits 6"]


def test_a_say_of_an_unknown_kind_is_named():
    """A variable piece must say something the engine can say."""
    text = GOOD.replace("prompt: t/bye", "prompt: [t/bye, {say: colour, var: caller_number}]")
    found = problems(text)
    assert found[0].startswith("flows/bad.yaml:17: node 'bye': prompt: cannot say 'colour'")


def test_say_pieces_must_be_in_the_catalogue():
    """A flow that says numbers needs the digit pieces in the catalogue."""
    text = GOOD.replace("prompt: t/bye", "prompt: [t/bye, {say: digits, var: caller_number}]")
    found = problems(text)
    assert found[0].startswith("flows/bad.yaml: the prompt catalogue lacks pieces needed to say")
    assert "digits/0" in found[0]


def test_broken_yaml_names_the_line():
    """A syntax error is reported with its line, not a traceback."""
    found = problems("name: demo\nstart: a\nnodes:\n  a: [\n")
    assert len(found) == 1 and found[0].startswith("flows/bad.yaml:5: not valid YAML")


def test_a_file_that_is_not_a_flow_is_refused():
    """A list or a mapping without its fields is refused with what is missing."""
    assert problems("- 1\n- 2\n") == [
        "flows/bad.yaml: a flow file must be a mapping with name, start and nodes"
    ]
    assert problems("name: x\ncolour: red\n") == [
        "flows/bad.yaml:1: missing field 'start'",
        "flows/bad.yaml:1: missing field 'nodes'",
        "flows/bad.yaml:2: unknown field 'colour' (known: name, description, start, inputs, "
        "on_hangup, nodes)",
    ]


def test_every_problem_is_reported_at_once():
    """Several mistakes in one file are all listed, in line order."""
    text = GOOD.replace("prompt: t/hello", "prompt: t/nope").replace("kind: hangup", "kind: x")
    found = problems(text)
    assert [p.split(":")[1] for p in found] == ["6", "15"]


def test_a_bad_catalogue_is_refused():
    """A prompt catalogue with a duplicate, a bad name or an empty text names each entry."""
    with pytest.raises(FlowError) as caught:
        parse_catalogue("a/b: 一\na/b: 二\nNoSlash: 三\nc/d: ''\n", "prompts.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "prompts.yaml:2: key 'a/b' is used twice (lines 1 and 2)",
        "prompts.yaml:3: prompt name 'NoSlash' must look like 'group/name'",
        "prompts.yaml:4: prompt 'c/d' needs its text",
    ]


def test_the_catalogue_includes_recorded_pieces_and_names():
    """The catalogue has the flows' prompts and the rendered digits, units and kinds."""
    catalogue = load_catalogue(ROOT / "recordings" / "prompts.yaml")
    for name in ("hotline/welcome", "digits/yao", "pieces/dash", "unit/LZ-DC-01", "kind/id_card"):
        assert name in catalogue
    assert catalogue["unit/LZ-DC-01"] == "东关派出所"


# --------------------------------------------------------------------------- the command


def test_flows_check_lists_the_flows_and_their_nodes(capsys, monkeypatch, tmp_path):
    """`gateway flows check` on the shipped flows prints each flow with its node count."""
    monkeypatch.chdir(ROOT)
    code = cli.main(["--data-dir", str(tmp_path), "flows", "check"])
    out = capsys.readouterr().out
    assert code == 0
    assert "flows/hotline.yaml: flow 'hotline', 39 nodes" in out
    assert "flows/survey.yaml: flow 'survey', 13 nodes" in out
    assert "2 flows ok" in out


def test_flows_check_fails_on_a_bad_file(capsys, tmp_path):
    """A bad file makes the check exit 1 and name the file, node and mistake on stderr."""
    good = tmp_path / "good.yaml"
    bad = tmp_path / "bad.yaml"
    good.write_text(
        GOOD.replace("t/", "hotline/")
        .replace("hotline/hello", "hotline/welcome")
        .replace("hotline/menu", "hotline/main_menu")
        .replace("hotline/bye", "hotline/goodbye"),
        "utf-8",
    )
    bad.write_text(GOOD.replace("t/", "hotline/"), "utf-8")
    prompts = str(ROOT / "recordings" / "prompts.yaml")
    code = cli.main(
        ["--data-dir", str(tmp_path), "flows", "check", "--prompts", prompts, str(good), str(bad)]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert f"{good}: flow 'demo', 3 nodes" in captured.out
    assert f"{bad}:6: node 'hello': prompt: unknown prompt 'hotline/hello'" in captured.err
    assert "1 of 2 files have problems" in captured.err


def test_flows_check_refuses_two_flows_of_one_name(capsys, tmp_path):
    """Two files declaring the same flow name are an error."""
    text = (
        GOOD.replace("t/hello", "hotline/welcome")
        .replace("t/menu", "hotline/main_menu")
        .replace("t/bye", "hotline/goodbye")
    )
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(text, "utf-8")
    prompts = str(ROOT / "recordings" / "prompts.yaml")
    code = cli.main(
        [
            "--data-dir",
            str(tmp_path),
            "flows",
            "check",
            "--prompts",
            prompts,
            str(tmp_path / "a.yaml"),
            str(tmp_path / "b.yaml"),
        ]
    )
    assert code == 1
    assert "flow name 'demo' is also used by" in capsys.readouterr().err


def test_flows_check_with_a_missing_file(capsys, tmp_path):
    """A file that cannot be read is named with the reason."""
    prompts = str(ROOT / "recordings" / "prompts.yaml")
    code = cli.main(
        [
            "--data-dir",
            str(tmp_path),
            "flows",
            "check",
            "--prompts",
            prompts,
            str(tmp_path / "nope.yaml"),
        ]
    )
    assert code == 1
    assert "nope.yaml: cannot read" in capsys.readouterr().err


# --------------------------------------------------------------------------- wiring


def test_load_ivr_from_the_configuration(tmp_path, monkeypatch, clock):
    """The engine loads the shipped flows and keeps caller messages under the data folder."""
    from gateway import config as config_module
    from gateway.ivr.actions import ActionRegistry
    from gateway.ivr.service import load_ivr

    monkeypatch.chdir(ROOT)
    config = config_module.load(None, env={}, overrides=[f"gateway.data_dir={tmp_path}"])
    ivr = load_ivr(config, ActionRegistry(), clock)
    assert sorted(ivr.flows) == ["hotline", "survey"]
    assert ivr.runner.messages.root == tmp_path / "messages"
    assert ivr.runner.hours is not None and ivr.runner.hours.is_open(clock.now())


def test_bad_working_hours_stop_the_start(tmp_path, monkeypatch, clock):
    """Malformed working hours are refused at load, and spans that end before they
    start (well-formed, so past the load check) by the flow check, both naming the key."""
    from gateway import config as config_module
    from gateway.config import ConfigError
    from gateway.ivr.actions import ActionRegistry
    from gateway.ivr.service import load_ivr

    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match=r"hotline\.working_hours"):
        config_module.load(None, env={}, overrides=["hotline.working_hours=9-5"])
    config = config_module.load(None, env={}, overrides=["hotline.working_hours=17:30-08:30"])
    with pytest.raises(ConfigError, match=r"hotline\.working_hours.*start must precede end"):
        load_ivr(config, ActionRegistry(), clock)
