"""`kit run` as explicit phases, over a library that knows nothing of click:

    plan      options -> units and jobs (kit/plan.py), longest first
    preflight the doctor's checks that apply (kit/doctor.py): fail before anything is created or pulled
    standup   the run directory and its manifest (or the run to resume), the image, the lanes (GPUs)
    execute   the jobs on the lanes (kit/schedule.py), progress live (kit/progress.py)
    teardown  the manifest stamped complete or interrupted, the tables written
"""
import shlex
import shutil
import signal
import socket
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from kit import doctor, gpus, hints, layout, manifest, plan, results, runlock, sweep
from kit.errors import BadInput, DiskFull, Interrupted, NotFound
from kit.options import ADOPTED, field_meta, flag
from kit.outcomes import report
from kit.progress import Progress
from kit.runtimes import ArmJob, get_runtime, runtime_class
from kit.schedule import Scheduler
from kit.workload import events, scenarios
from kit.workload.runner import PRIMING



def new_run_id(tables):
    """The UTC time and tables, e.g. 20261128-031024-t1; claim() adds -2, -3, ... when it is taken."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-t{''.join(str(t) for t in sorted(tables))}" if tables else f"{stamp}-guide"   # kit sweep


def server_commands(options, unit):
    """The exact server command lines of a unit (port chosen at run time), for --dry-run and the manifest."""
    arm = scenarios.ALL_ARMS[unit.arm]
    models = {"A": unit.model} if unit.model else {"A": options.model_a, "B": options.model_b}
    return {m: shlex.split(options.server_cmd) + ["--model", name, "--host", "127.0.0.1", "--port", "<free port>"]
            + arm.server_args() for m, name in models.items()}


def tail(path, lines=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def last_error(out):
    for line in reversed(tail(Path(out) / layout.WORKLOAD_LOG, 200).splitlines()):
        if "arm failed:" in line:
            return line.split("arm failed:", 1)[1].strip()
    return "the workload exited without saying why; see workload.log"


# -- standup -----------------------------------------------------------------------------------------
class AlreadyComplete(Exception):
    """A resume of a run that is complete: nothing to do, nothing written."""


def open_resume(results_dir, run_id, given, command, held=None, add=None):
    """(RunDir, kit.manifest.Manifest, options) of an interrupted run; `given` holds the options typed on the command
    line (or set in the environment), which must agree with the run's (a resumed run keeps its options) but
    for those marked resume in kit.options, which it takes and records. held: an ExitStack that takes
    the run's lock (kit.runlock) before its manifest is read, and AlreadyComplete for a complete run; None
    for a look only (--dry-run). add: a kit.sweep.Addition, models the sweep run gets (a complete one too)."""
    run_dir = layout.RunDir(layout.results_root(results_dir) / layout.check_run_id(run_id))
    if not run_dir.exists():
        raise NotFound(f"cannot resume {run_id!r}: no such run in {results_dir}", "list the runs with `kit ls`")
    record = manifest.read(run_dir)
    options = record.options
    if options.runtime in ADOPTED:
        raise BadInput(f"{run_id} was adopted from docker compose; kit run cannot resume it",
                       "run the missing arms with `docker compose run`, then adopt a new folder")
    changed = {name: value for name, value in given.items() if getattr(options, name) != value}
    for name, value in changed.items():
        if not field_meta(name).get("resume"):
            raise BadInput(f"--{flag(name)} {value!r} conflicts with the run's {getattr(options, name)!r}",
                           "a resumed run keeps its options: leave it out, or start a new run")
    if add:
        manifest.check_addition(record, add)     # before the lock: a bad addition writes nothing
    if record.complete is not True or add:     # checked once, before the lock too: a bad one writes nothing
        options.with_(**changed).check(needed=pending_models(run_dir, record))
    if held is not None:
        if record.complete is True and not add:      # checked before the lock too: a complete run is not touched
            raise AlreadyComplete(run_id)
        held.enter_context(runlock.hold(run_dir.path))
        record = manifest.read(run_dir)  # as the run's last owner left it
        if record.complete is True and not add:
            raise AlreadyComplete(run_id)
    record.options = record.options.with_(**changed)      # how its jobs are scheduled (a longer time limit after a TIMEOUT)
    record.resumes.append({"at": layout.now(), "command": command, "git_commit": manifest.git_commit()})
    if add:
        manifest.add_sweep_models(record, add, command, None if held is not None else unhashed)
    return run_dir, record, record.options


def unhashed(name):
    """A model's identity for --dry-run: nothing read (kit.manifest.model_info hashes a folder)."""
    return {}


def pending_models(run_dir, record):
    """The sweep models whose units have jobs still to run: a resume needs their folders, not the others'."""
    return list(dict.fromkeys(j.unit.model for j in plan.jobs(record.options)
                              if j.unit.model and j.unit.name in record.units and not job_done(run_dir, j)))


# -- execute -----------------------------------------------------------------------------------------
class Execution:
    """One run's side of the execution: runs its jobs on lanes and keeps its manifest."""

    def __init__(self, run_dir, record, runtime, label=""):
        self.run_dir, self.manifest, self.options, self.runtime = run_dir, record, record.options, runtime
        self.label = label          # names the run in a group's progress lines ("" for a single run)
        self.lock = threading.Lock()
        self.measured = set(record.h2d)     # devices (kit.manifest.device_key) with a host->GPU number
        # (lane, prime_key) primed by this process: a resume primes again, since it may run on another host,
        # or after the cache was cleared, and a measured load must never meet an empty cache
        self.primed = set()
        self.progress = None

    def tasks(self, jobs):
        """This run's jobs that are not done yet, as tasks for the scheduler."""
        return [Task(self, j) for j in jobs if not job_done(self.run_dir, j)]

    def run_job(self, task, lane):
        job = task.job
        out = self.run_dir.repeat_dir(job.unit.name, job.repeat)
        if out.exists():   # an interrupted attempt: start this repeat afresh
            for f in out.iterdir():
                f.unlink()
        host = socket.gethostname()
        device = manifest.device_key({"host": host, "gpu": lane.gpu.record() if lane.gpu else None, "lane": lane.label})
        with self.lock:
            measure = device not in self.measured      # once per device: a resume on another GPU measures there
            self.measured.add(device)
        key = prime_key(lane.label, job.unit)
        prime = self.options.cache == "warm" and (key not in self.primed or not self.runtime.lanes_keep_gpu)
        argv = self.options.arm_options(job.unit.arm, job.unit.script, job.repeat, self.manifest.run_id,
                                        measure, prime, job.unit.model,
                                        job.unit.name if job.unit.model else "").to_argv()
        models = [sweep.unit_model(self.manifest.sweep, job.unit.name)] if job.unit.model else self.manifest.models.values()
        arm_job = ArmJob(self.manifest.run_id, job.unit.name, job.repeat, argv, gpu=lane.gpu,
                         model_paths=[m["path"] for m in models if m and m["path"]])
        started, t0 = layout.now(), time.monotonic()
        code = self.runtime.run_arm(arm_job, out, lambda line: self.progress.line(task, lane, line))
        status = {"arm": job.unit.name, "repeat": job.repeat, "ok": code == 0, "exit_code": code,
                  "seconds": round(time.monotonic() - t0, 3), "host": host,
                  "ended": layout.now(), "error": None if code == 0 else last_error(out)}
        layout.write_json(out / layout.STATUS, status)
        priming = priming_record(out, 1 if job.unit.model else 2) if prime else None
        if priming and priming["ok"]:
            self.primed.add(key)
        record = dict(status, unit=job.unit.name, lane=lane.label, started=started,
                      gpu=lane.gpu.record() if lane.gpu else None, priming=priming,
                      **self.runtime.job_record(arm_job, out))
        self.record(out, record, device)
        return status

    def record(self, out, record, device):
        env = layout.read_json(out / layout.ENV)
        with self.lock:
            m = self.manifest
            if env and m.environment is None:
                m.environment = env
            if env and env.get("h2d_gbps") is not None:
                m.h2d[device] = env["h2d_gbps"]
            m.jobs = [j for j in m.jobs if (j["unit"], j["repeat"]) != (record["unit"], record["repeat"])]
            m.jobs.append(record)
            manifest.write(self.run_dir, m)

    def stamp(self, **fields):
        with self.lock:
            self.manifest.update(**fields)
            manifest.write(self.run_dir, self.manifest)

    def resume_hint(self):
        return hints.resume_command(self.manifest.run_id, self.run_dir.path.parent, sweep=bool(self.manifest.sweep))


@dataclass(frozen=True)
class Task:
    """A job of one run (an Execution): what the scheduler hands to a lane."""
    work: Execution
    job: object

    @property
    def key(self):
        return f"{self.work.label}: {self.job.key}" if self.work.label else self.job.key

    @property
    def unit(self):
        return self.job.unit

    def run(self, lane):
        return self.work.run_job(self, lane)


def prime_key(lane_label, unit):
    """Jobs with equal keys start the same servers on the same lane: priming one primes the others. The
    study's units share the run's models A and B; a sweep unit has its own model."""
    return lane_label, scenarios.ALL_ARMS[unit.arm].compile_key(), unit.model


def priming_record(out, models=2):
    """What the manifest keeps of a job's priming (--cache warm): its loads (one per model), untimed."""
    path = Path(out) / PRIMING
    try:
        loads = [e for e in events.read(path) if e["kind"] == "load"] if path.exists() else []
    except (OSError, ValueError):
        loads = []
    return {"ok": len(loads) == models and all(e["ok"] for e in loads),
            "seconds": round(sum(e["duration_s"] for e in loads), 3),
            "loads": [{"model": e["model"], "seconds": e["duration_s"], "ok": e["ok"],
                       "compile_cache": (e.get("breakdown") or {}).get("compile_cache"),
                       "compile_s": (e.get("breakdown") or {}).get("compile_s")} for e in loads]}


def job_done(run_dir, job):
    status = layout.read_json(run_dir.repeat_dir(job.unit.name, job.repeat) / layout.STATUS)
    return bool(status and status.get("ok") is True)


def previous_seconds(record):
    """{unit: seconds of its last successful repeat} from the manifest (ETAs of later repeats)."""
    return {j["unit"]: j["seconds"] for j in record.jobs if j.get("ok")}


def on_event(progress):
    def handle(kind, task, lane, result=None):
        if kind == "start":
            progress.started(task, lane)
        elif kind == "end":
            if isinstance(result, Exception):
                result = {"ok": False, "exit_code": None, "seconds": 0, "error": f"{type(result).__name__}: {result}"}
            out = task.work.run_dir.repeat_dir(task.unit.name, task.job.repeat)
            progress.ended(task, lane, result, "" if result.get("ok") else tail(out / layout.WORKLOAD_LOG, 8))
        elif kind == "retire":
            progress.retired(lane, result)
    return handle


def expected(task):
    return plan.expected_seconds(task.unit, previous_seconds(task.work.manifest))


def execute(works, tasks, lanes, say, tty=None):
    """Run the tasks (of one run, or of a group's runs; longest first) on the lanes.
    Returns ({task: status}, tasks not run, {lane: why it was retired})."""
    with Progress(expected, tty=tty) as progress:
        progress.plan(tasks)
        for work in works:
            work.progress = progress

        def run_task(task, lane):
            try:
                return task.run(lane)
            except OSError as e:
                error = layout.disk_full(e, f"{task.key} failed")
                if error is not e:          # a full disk fails every job: no lane takes another
                    scheduler.retire_all(error.message)
                raise error from None

        share = plan.gpu_share(t.unit for t in tasks)
        scheduler = Scheduler(lanes, run_task, events=on_event(progress),
                              is_busy=lambda lane: lane.gpu and gpus.busy_reason(lane.gpu, share))
        try:
            statuses = scheduler.run(tasks)
        except KeyboardInterrupt as e:
            received = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
            progress.interrupted(received)
            stop(works, scheduler, say, received)
            raise Interrupted(f"interrupted ({received}): every job of the run was stopped",
                              "finish it with " + " and ".join(f"`{w.resume_hint()}`" for w in works)) from None
    return statuses, [t for t in tasks if t not in statuses], scheduler.retired


def stop(works, scheduler, say, received="SIGINT"):
    """The Ctrl-C path: stamp the manifests first, then stop every lane; further Ctrl-Cs are ignored."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for work in works:
            work.stamp(complete=False, interrupted=layout.now())
        say(f"{received} received: stopping every job of the run ...")
        scheduler.stop()
        for work in works:
            work.runtime.stop_run(work.manifest.run_id)
        scheduler.join(timeout=180)
        for work in works:
            work.stamp()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


# -- the whole run -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    work: Execution
    run: object               # kit.results.Run, as loaded for its tables
    failed: int               # jobs that ran and failed
    not_run: list             # jobs left because no lane could take them
    retired: dict             # lane -> why it was not used any more


def ready_runtime(options, results_dir, build_line):
    """The runtime, after the pre-flight passed and the image (if any) was built or found."""
    runtime = get_runtime(options, on_build_line=build_line)
    doctor.preflight(options, results_dir, runtime)
    runtime.prepare()
    return runtime


def claim(results_dir, base, names, generated):
    """Create the run folders (one per name(base)) atomically with mkdir: the first to create a folder owns
    it. A generated id taken by another run (started in the same second) becomes base-2, base-3, ...;
    a given one is refused. Returns the base used."""
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = base if n == 1 else f"{base}-{n}"
        made = []
        try:
            for name in names(candidate):
                (Path(results_dir) / name).mkdir()
                made.append(name)
            return candidate
        except FileExistsError as e:
            for name in made:
                (Path(results_dir) / name).rmdir()
            if not generated:
                raise BadInput(f"run {Path(e.filename).name!r} exists in {results_dir}",
                               "runs are never overwritten: resume it with --resume") from None
    raise BadInput(f"no free run id for {base!r} in {results_dir}", "name the run with --run-id")


def create(options, results_dir, run_id, runtime, command, held, group=None, part=""):
    """The manifest of a new run in its folder (claimed by claim()), owned by this process (held: an
    ExitStack). A manifest that cannot be written (a full disk) leaves no folder behind."""
    run_dir = layout.RunDir(Path(results_dir) / run_id)
    record = manifest.new(run_id, options, plan.units(options), command)
    if group:
        record.rest["group"] = group
    record.runtime = runtime.describe()
    try:
        held.enter_context(runlock.hold(run_dir.path))
        manifest.write(run_dir, record)
    except OSError as e:
        shutil.rmtree(run_dir.path, ignore_errors=True)
        raise layout.disk_full(e, f"cannot start run {run_id}") from None
    return Execution(run_dir, record, runtime, label=part)


def run(options, results_dir, run_id=None, resume=None, given=None, command=None, say=print, tty=None,
        build_line=print, add=None):
    """Plan, pre-flight, stand up, execute, tear down. Returns [Outcome], one per run (a Slurm run over
    several partitions is a group of runs, <run-id>-<partition>, executed together: Runtime.split)."""
    command = command or ["kit"] + sys.argv[1:]
    with ExitStack() as held:      # the locks of the runs (kit.runlock), released when the run ends
        if resume:
            try:
                run_dir, record, options = open_resume(results_dir, resume, given or {}, command, held, add)
            except AlreadyComplete:
                say(f"run {resume} is complete: nothing to resume, nothing changed (its tables: `kit table {resume}`)")
                return []
            runtime = ready_runtime(options, results_dir, build_line)       # options checked by open_resume
            record.runtime = record.resumes[-1]["runtime"] = runtime.describe()
            manifest.write(run_dir, record)
            return finish([Execution(run_dir, record, runtime)], say, tty)
        options.check()
        parts = runtime_class(options).split(options)
        names = (lambda b: [f"{b}-{p}" for p, _ in parts]) if len(parts) > 1 else (lambda b: [b])
        if run_id is not None:
            for rid in names(layout.check_run_id(run_id)):
                if (Path(results_dir) / rid).exists():
                    who = runlock.owner(Path(results_dir) / rid)
                    if who:
                        raise runlock.busy(rid, who)
                    raise BadInput(f"run {rid!r} exists in {results_dir}",
                                   "runs are never overwritten: resume it with --resume")
        ready = [ready_runtime(opts, results_dir, build_line) for _, opts in parts]
        base = claim(results_dir, run_id if run_id is not None else new_run_id(options.table_numbers()), names,
                     generated=run_id is None)
        group = {"id": base, "runs": names(base)} if len(parts) > 1 else None
        works = []
        try:
            for (part, opts), rid, rt in zip(parts, names(base), ready):
                works.append(create(opts, results_dir, rid, rt, command, held, group, part))
        except BaseException:
            for rid in names(base)[len(works):]:
                shutil.rmtree(Path(results_dir) / rid, ignore_errors=True)    # claimed, never written
            raise
        return finish(works, say, tty)


def finish(works, say, tty):
    jobs = {id(w): [j for j in plan.jobs(w.options) if j.unit.name in w.manifest.units] for w in works}
    tasks = sorted((t for w in works for t in w.tasks(jobs[id(w)])), key=lambda t: -(expected(t)[0] or 0))
    for w in works:
        w.runtime.plan_order([(w.manifest.run_id, t.unit.name, t.job.repeat) for t in tasks if t.work is w])
    options = works[0].options
    lanes = runtime_class(options).lanes(options, len(tasks))
    if works[0].manifest.stand_in:
        say(f"{works[0].manifest.stand_in}: shows how the kit works; not a result")
    say(f"run {', '.join(w.manifest.run_id for w in works)}: {what_run(options)}; {len(tasks)} of "
        f"{sum(map(len, jobs.values()))} jobs "
        f"to run ({', '.join(t.key for t in tasks) or 'none'}); runtime {options.runtime} on "
        f"{', '.join(lane.label for lane in lanes[:8])}{' ...' if len(lanes) > 8 else ''}; "
        f"results in {', '.join(str(w.run_dir.path) for w in works)}")
    old = signal.signal(signal.SIGTERM, _sigterm)
    try:
        statuses, not_run, retired = execute(works, tasks, lanes, say, tty)
    finally:
        signal.signal(signal.SIGTERM, old)
    outcomes = []
    for w in works:
        mine = [s for t, s in statuses.items() if t.work is w]
        left = [t.job for t in not_run if t.work is w]
        w.manifest.rest.pop("interrupted", None)
        try:
            w.stamp(complete=not left, ended=layout.now())
            loaded = results.load_run(w.run_dir.path)
            results.write_tables(loaded, w.options.table_numbers())
        except OSError as e:
            error = layout.disk_full(e, f"run {w.manifest.run_id} cannot be finished")
            if error is not e:
                error.hint = f"free space there, then `{w.resume_hint()}`"
            raise error from None
        failed = sum(1 for s in mine if isinstance(s, Exception) or not s.get("ok"))
        outcomes.append(Outcome(w, loaded, failed, left, retired))
    full = next((s for s in statuses.values() if isinstance(s, DiskFull)), None)
    if full:
        for w in works:     # a job whose files could not be written (a Slurm job submitted, its record not)
            w.runtime.stop_run(w.manifest.run_id)
        raise DiskFull(full.message, f"{full.hint}, then " + " and ".join(f"`{w.resume_hint()}`" for w in works))
    return outcomes


def what_run(options):
    if options.sweep_models:
        return f"sweep of {len(options.sweep_models)} model(s) at level(s) {', '.join(map(str, options.sweep_levels))}"
    return f"tables {', '.join(map(str, options.table_numbers()))}"


def describe_plan(options, todo, lanes, runtime=None, results_dir="results"):
    """The lines of --dry-run: jobs in order, lanes, and every server command (or batch script)."""
    lines = [f"plan: {what_run(options)} -> {len(todo)} job(s), longest "
             f"first: {', '.join(j.key for j in todo) or 'none'}",
             f"runtime {options.runtime}; protocol {options.protocol}; cache {options.cache}; lanes: "
             + ", ".join(lane.label for lane in lanes)]
    if options.cache == "warm":
        configs = {prime_key("", j.unit) for j in todo}
        lines.append(f"cache warm: each lane first starts and stops the servers of each of the {len(configs)} server "
                     "configuration(s) once, untimed, so that every measured load reads the compile cache")
    for unit in dict.fromkeys(j.unit for j in todo):
        lines.append(f"[{unit.name}] {scenarios.ALL_ARMS[unit.arm].title}"
                     + (f" (seed replay of {unit.script})" if unit.script else ""))
        for model, cmd in server_commands(options, unit).items():
            lines.append(f"    server {model}: VLLM_SERVER_DEV_MODE=1 {shlex.join(cmd)}")
    if runtime is not None and todo:
        job = todo[0]
        argv = options.arm_options(job.unit.arm, job.unit.script, job.repeat, "<run-id>", model=job.unit.model,
                                   unit=job.unit.name if job.unit.model else "").to_argv()
        arm_job = ArmJob("<run-id>", job.unit.name, job.repeat, argv)
        script = runtime.batch_script(arm_job, layout.RunDir(Path(results_dir).resolve() / "<run-id>").repeat_dir(
            job.unit.name, job.repeat))
        if script is not None:
            lines += [f"batch script of {job.key} (the others differ only in arm and repeat):", script]
    lines.append("dry run: nothing started")
    return lines


def dry_run(options, results_dir, resume=None, given=None, add=None):
    if resume:
        run_dir, record, options = open_resume(results_dir, resume, given or {}, [], add=add)
        todo = [j for j in plan.jobs(options) if j.unit.name in record.units and not job_done(run_dir, j)]
        lines = sweep.added_lines(resume, record.sweep, record.sweep["models"][-len(add.models):]) if add else []
        return lines + describe_plan(options, todo, runtime_class(options).lanes(options, len(todo)),
                                     runtime_for_dry_run(options), results_dir)
    options.check()
    cls = runtime_class(options)
    parts = cls.split(options)
    lines = []
    for p, opts in parts:
        todo = plan.jobs(opts)
        lines += ([f"{cls.part_name} {p}: a run of its own (<run-id>-{p})"] if len(parts) > 1 else [])
        if opts.sweep_models:       # the fit, as the run would decide it (without hashing the models)
            part = manifest.sweep_record(opts, lambda name: {})
            lines += sweep.plan_lines(part)
            todo = [j for j in todo if j.unit.name not in sweep.skipped_units(part)]
        lines += describe_plan(opts, todo, cls.lanes(opts, len(todo)), runtime_for_dry_run(opts), results_dir)
    return lines


def start(options, results_dir, run_id=None, resume=None, given=None, plan_only=False, say=print, add=None):
    """`kit run` and `kit sweep`: say() the plan (plan_only: --dry-run), or run and say what came of it
    (kit.outcomes.report: RunFailed when jobs failed). A resume of a complete run only says so. add: models
    a resumed sweep gets (kit.sweep.Addition)."""
    if plan_only:
        for line in dry_run(options, results_dir, resume, given, add):
            say(line)
        return
    outcomes = run(options, results_dir, run_id=run_id, resume=resume, given=given, say=say, add=add)
    if outcomes:
        report(outcomes, say=say)


def runtime_for_dry_run(options):
    """The runtime, where --dry-run shows what it makes (Slurm's batch scripts); others need no engine for it."""
    return get_runtime(options) if runtime_class(options).dry_run_needs_runtime else None


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is; the user is told which of the two it was."""


def _sigterm(signum, frame):
    raise Terminated
