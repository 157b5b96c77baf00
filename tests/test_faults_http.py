"""A broken server never becomes a good number, a hang, or a traceback (issue 19: HTTP faults, process hygiene).

The faults come from tests/http_faults.py: the vLLM test double with one answer broken in a way the real
vLLM never breaks it (a cut stream, a slow drip, garbage bytes). To cover a new fault, add a row to CASES
(and, if it needs a new kind of answer, a function to http_faults.FAULTS).
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from conftest import MODEL_A, MODEL_B, ROOT, double_config, kit, leftover_servers, only_run
from kit.cli import main
from kit.errors import BadInput
from kit.options import RunOptions
from kit.workload import events, redaction
from kit.workload.engine import Server, ServerError
from kit.workload.options import ArmOptions

FAULTY = ROOT / "tests" / "http_faults.py"
TOKEN = "hf_" + "Fa17" * 9
SLACK_S = 2.0      # the deadline's allowance: a call fails at most this long after --call-timeout


def faulty_cmd(fault="", arg="", path="", config=None, print_env=""):
    """The server command of the double with one HTTP fault."""
    cmd = [sys.executable, str(FAULTY), "--config", json.dumps(config or {})]
    cmd += ["--fault", fault, "--fault-arg", arg] if fault else []
    cmd += ["--fault-path", path] if path else []
    cmd += ["--print-env", print_env] if print_env else []
    return shlex.join(cmd)


def started(tmp_path, cmd, call_timeout=30.0, env=None):
    server = Server("A", MODEL_A, cmd, ["--enable-sleep-mode"], str(tmp_path / "server-A.log"),
                    env=dict(os.environ, VLLM_SERVER_DEV_MODE="1", **(env or {})), call_timeout=call_timeout)
    server.start()
    server.wait_ready(30)
    return server


CALLS = {   # what the workload asks of a server, one step at a time
    "prompt": lambda s: s.chat("hello there", 100, "sys"),
    "warmup": lambda s: s.chat("hi", 1, "sys", stream=False),
    "sleep": lambda s: s.call("POST", "/sleep?level=1"),
    "wake": lambda s: s.call("POST", "/wake_up"),
    "reload": lambda s: s.call("POST", "/collective_rpc", {"method": "reload_weights"}),
}

CASES = [   # (fault, its argument, the call, --call-timeout, what the error's first line says)
    ("cut", "", "prompt", 30, "cut a prompt (POST /v1/chat/completions) short: the stream ended after 2 chunks "
                              "without [DONE]"),
    ("no_done", "", "prompt", 30, "the stream ended after 2 chunks without [DONE]"),
    ("no_usage", "", "prompt", 30, "without a usage chunk with completion_tokens (1 chunks, then [DONE])"),
    ("drip", "0.3", "prompt", 1.5, "did not answer a prompt (POST /v1/chat/completions) within 1.5 s (--call-timeout)"),
    ("drip_body", "0.3", "sleep", 1.5, "did not answer POST /sleep?level=1 within 1.5 s (--call-timeout)"),
    ("sse", "@@@", "prompt", 30, "streamed in a prompt (POST /v1/chat/completions) something that is not a JSON "
                                 "object: '@@@'"),
    ("sse", "42", "prompt", 30, "something that is not a JSON object: '42'"),
    ("sse", '["a"]', "prompt", 30, "something that is not a JSON object: '[\"a\"]'"),
    ("sse", "[" * 100000, "prompt", 30, "something that is not a JSON object: '[[[["),
    ("sse", '{"id": "x"}', "prompt", 30, "streamed a chunk without a choices list"),
    ("body", "{oops", "wake", 30, "answered POST /wake_up with something that is not a JSON object: '{oops'"),
    ("body", "<html>proxy error</html>", "wake", 30, "POST /wake_up with something that is not a JSON object"),
    ("reply", '{"choices": []}', "warmup", 30, "answered a chat completion (POST /v1/chat/completions) without "
                                               "usage.completion_tokens"),
    ("reply", '{"usage": {"completion_tokens": "1"}}', "warmup", 30, "without usage.completion_tokens"),
    ("reply", "@@@", "warmup", 30, "with something that is not a JSON object: '@@@'"),
]


@pytest.mark.e2e
@pytest.mark.parametrize("fault, arg, call, timeout, message", CASES, ids=lambda v: str(v)[:20])
def test_a_broken_answer_is_a_server_error_naming_the_call(tmp_path, fault, arg, call, timeout, message):
    server = started(tmp_path, faulty_cmd(fault, arg), call_timeout=timeout)
    outcome = {}

    def attempt():
        try:
            outcome["result"] = CALLS[call](server)
        except Exception as e:   # noqa: BLE001 - the test says which kind
            outcome["error"] = e
    try:
        t0 = time.monotonic()
        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(timeout + SLACK_S)      # the whole call is bounded, whatever the server does
        assert not worker.is_alive(), f"{call} still running {timeout + SLACK_S} s after it began"
        assert isinstance(outcome.get("error"), ServerError), outcome
        first = str(outcome["error"]).splitlines()[0]
        assert message in first and first.startswith(f"server A ({MODEL_A}) "), first
        assert time.monotonic() - t0 < timeout + SLACK_S
    finally:
        server.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("version", ["0.11.0", "0.24.0"])
def test_the_doubles_healthy_answers_pass_the_same_rules(tmp_path, version):
    """The rules accept what vLLM really sends (the double follows it), so a failure above is the fault's."""
    server = started(tmp_path, faulty_cmd(config={"vllm_version": version}))
    try:
        ttft, tokens = CALLS["prompt"](server)
        assert ttft > 0 and tokens == 17          # the double's natural reply: 16 tokens and EOS
        assert CALLS["warmup"](server) == (None, 1)
        assert CALLS["sleep"](server) is None and CALLS["wake"](server) is None
        assert CALLS["reload"](server) == {"results": [None]}
    finally:
        server.stop()


# -- the arm: a broken prompt fails it, with the reason in the table ---------------------------------------
ARM_CASES = [   # (fault, its argument, extra kit run options, what the arm's error says)
    ("cut", "", [], "the stream ended after 2 chunks without [DONE]"),
    ("sse", "@@@", [], "something that is not a JSON object: '@@@'"),
    ("body", "{oops", [], "answered POST /wake_up with something that is not a JSON object: '{oops'"),
    ("drip", "2", ["--call-timeout", "5"], "did not answer a prompt (POST /v1/chat/completions) within 5 s"),
]


@pytest.mark.e2e
@pytest.mark.parametrize("fault, arg, options, message", ARM_CASES, ids=[c[0] for c in ARM_CASES])
def test_a_broken_server_fails_the_arm_with_the_reason_and_the_lane_goes_on(results, fault, arg, options, message):
    marker = f"faults-http-{fault}"
    cmd = faulty_cmd(fault, arg, config=double_config(marker=marker))
    args = ["--runtime", "local", "--results-dir", results, "--model-a", MODEL_A, "--model-b", MODEL_B,
            "--server-cmd", cmd, *options]
    r = kit("run", "--arm", "l1", "--arm", "l1-nowarm", *args)
    assert r.returncode == 1, r.stdout + r.stderr
    run = only_run(results)
    status = json.loads((run / "l1" / "r1" / "status.json").read_text())
    assert status["ok"] is False and message in status["error"], status
    failed = [e for e in events.read(run / "l1" / "r1" / "events.jsonl") if not e["ok"]]
    assert message in failed[0]["error"] and failed[-1]["kind"] == "total"
    assert not [e for e in events.read(run / "l1" / "r1" / "events.jsonl") if e["kind"] == "prompt" and e["ok"]]
    # the lane went on to the next arm, which failed the same way (same server), not "not run"
    assert message in json.loads((run / "l1-nowarm" / "r1" / "status.json").read_text())["error"]
    table = (run / "tables" / "table3.md").read_text()
    assert "FAILED" in table and message.split(":")[0] in table and "without saying why" not in table
    assert "Traceback" not in (run / "l1" / "r1" / "workload.log").read_text()
    assert not leftover_servers(marker)


# -- --call-timeout and --ready-timeout: bounded, one line ------------------------------------------------
@pytest.mark.parametrize("value", [1e300, 86400.5, float("inf"), 0.0])
def test_an_absurd_timeout_is_refused_in_one_line(value):
    with pytest.raises(BadInput) as e:
        RunOptions(tables=(1,), call_timeout=value).check()
    assert "--call-timeout must be a positive number of seconds, at most 86400" in e.value.line()
    assert "\n" not in e.value.line()
    with pytest.raises(ValueError, match="call-timeout must be a positive number of seconds, at most 86400"):
        ArmOptions(arm="l1", call_timeout=value)
    with pytest.raises(ValueError, match="ready-timeout must be"):
        ArmOptions(arm="l1", ready_timeout=value)


def test_the_workload_refuses_a_huge_call_timeout_with_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "kit.workload", "--arm", "l1", "--out", str(tmp_path),
                        "--call-timeout", "1e300"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "call-timeout must be a positive number of seconds, at most 86400" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("option", ["--call-timeout", "--ready-timeout"])
def test_kit_run_refuses_a_huge_timeout_with_exit_2(tmp_path, capsys, option):
    code = main(["run", "1", "--runtime", "local", "--results-dir", str(tmp_path), option, "1e300"])
    err = capsys.readouterr().err
    assert code == 2 and f"{option} must be a positive number of seconds, at most 86400" in err
    assert len(err.strip().splitlines()) <= 2 and not list(tmp_path.iterdir())   # a line (and a hint), nothing written


# -- server logs: redacted as they are written --------------------------------------------------------------
def test_redaction_is_one_rule_for_logs_and_bundles():
    from kit import bundle
    assert bundle.redact is redaction.redact and bundle.secret_values is redaction.secret_values


@pytest.mark.e2e
def test_a_token_the_server_prints_never_reaches_its_log(tmp_path):
    other = "hf_" + "Q9" * 16                                  # token-shaped, in no variable
    server = started(tmp_path, faulty_cmd(print_env="HF_TOKEN") + f" --hub-note {other}",   # the double echoes
                     env={"HF_TOKEN": TOKEN})                                           # args it ignores
    try:
        server.chat("hello", 5, "sys")
    finally:
        server.stop()
    log = (tmp_path / "server-A.log").read_text()
    assert TOKEN not in log and other not in log
    assert "DOUBLE-NOTE HF_TOKEN=[REDACTED]" in log               # the line is there, the token is not
    assert log.startswith("=== sleepkit: starting server A: ") and "[REDACTED]" in log.splitlines()[0]
    assert server.log_matches(r"Model loading took ([\d.]+) GiB")   # the readers still read the file
    assert "Application shutdown complete." in server.log_tail()    # the last lines landed before stop returned


@pytest.mark.e2e
def test_the_log_reader_never_holds_up_a_server_that_exited(tmp_path):
    """A server whose child keeps the log pipe open: its exit is still seen, and the error quotes its log."""
    script = ("import subprocess, sys; print('fatal: no GPU', flush=True); "
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); sys.exit(3)")
    server = Server("A", MODEL_A, f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}", [],
                    str(tmp_path / "server-A.log"))
    server.start()
    t0 = time.monotonic()
    with pytest.raises(ServerError) as e:
        server.wait_ready(30)
    assert "exited with status 3 before it was ready" in str(e.value) and "fatal: no GPU" in str(e.value)
    assert time.monotonic() - t0 < 10
    server.stop()                                            # takes the orphaned child (same group) down
    server.log_copier.join(10)
    assert not server.log_copier.is_alive()


# -- process hygiene: SIGKILL of the parent leaves nothing behind -----------------------------------------
HARNESS = """
import sys, threading
from kit.runtimes import ArmJob
from kit.runtimes.local import LocalRuntime
from kit.workload.options import ArmOptions
argv = ArmOptions(arm="l1", run_id="pdeath", model_a=sys.argv[2], model_b=sys.argv[3], server_cmd=sys.argv[4],
                  ready_timeout=600.0).to_argv()
job = ArmJob(run_id="pdeath", unit="l1", repeat=1, argv=argv)
lane = threading.Thread(target=LocalRuntime().run_arm, args=(job, sys.argv[1], print))   # a lane, as kit run has
lane.start()
lane.join()
"""


def test_a_docker_container_runs_the_workload_under_an_init():
    """docker-py's init=True (docker run --init): signals reach the workload, which is not PID 1, and
    orphans are reaped; the workload then stops its servers as on the host."""
    from kit.runtimes import ArmJob
    from kit.runtimes.docker import container_spec, run_kwargs
    job = ArmJob(run_id="init", unit="l1", repeat=1, argv=ArmOptions(arm="l1").to_argv())
    assert run_kwargs(container_spec(job, "img"))["init"] is True


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.e2e
@pytest.mark.parametrize("phase", ["load", "prompt"])
def test_sigkill_of_the_parent_leaves_no_workload_or_server(tmp_path, phase):
    marker = f"faults-http-pdeath-{phase}"
    config = double_config(marker=marker)
    if phase == "load":          # killed while model A's server starts (it never finishes)
        config["models"][MODEL_A]["delays"]["startup"] = 600
        cmd = faulty_cmd(config=config)
    else:                        # killed during a prompt that never ends
        cmd = faulty_cmd("drip", "1", config=config)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    parent = subprocess.Popen([sys.executable, "-c", HARNESS, str(tmp_path / "out"), MODEL_A, MODEL_B, cmd],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        log = tmp_path / "out" / "server-A.log"
        children = lambda: [p for p in leftover_servers(marker) if p.pid != parent.pid]
        kinds = lambda: {"workload" if "kit.workload" in p.info["cmdline"] else "server" for p in children()}
        # load: A's server is starting; prompt: a streamed prompt is under way (and never ends)
        busy = (lambda: True) if phase == "load" else (lambda: '"stream":true' in log.read_text())
        wait_for(lambda: log.exists() and kinds() == {"workload", "server"} and busy(), 60,
                 "the workload and its server did not start")
        procs = children()
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        gone, alive = psutil.wait_procs(procs, timeout=15)
        assert not alive, [p.cmdline()[:4] for p in alive]
    finally:
        parent.kill()
        for p in leftover_servers(marker):
            p.kill()
