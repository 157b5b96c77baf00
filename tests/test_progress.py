"""The live lines of a run: lane, job, step, elapsed and ETA; plain lines for logs."""


def test_live_lines_show_lane_job_step_elapsed_and_eta():
    import io
    from types import SimpleNamespace
    from kit.progress import Progress
    job, lane = SimpleNamespace(key="l1 r1"), SimpleNamespace(label="gpu 0")
    other = SimpleNamespace(key="nosleep r1")
    out = io.StringIO()
    progress = Progress(expected=lambda j: (600.0, "published"), tty=False, out=out)
    progress.plan([job, other])
    progress.started(job, lane)
    progress.line(job, lane, "start load A round 0")
    live = progress._render().plain
    assert "[gpu 0] l1 r1: load A round 0" in live and "ETA ~9:5" in live and "from published" in live
    assert "waiting: nosleep r1" in live
    progress.line(job, lane, "done  load A round 0 61.234 s ok")
    progress.ended(job, lane, {"ok": False, "exit_code": 1, "seconds": 70, "error": "server B died"}, "log tail")
    text = out.getvalue()
    assert "[gpu 0] l1 r1: started (expected 10:00 from published)" in text
    assert "[gpu 0] l1 r1: done  load A round 0 61.234 s ok" in text
    assert text.count("FAILED") == 1 and "server B died" in text and "log tail" in text
    assert "[gpu 0]" not in progress._render().plain                  # the finished job left the live lines
