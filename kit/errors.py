"""One error tree for the host side. kit.cli.main() turns any KitError into one line and its exit code;
the one exception is the pre-flight's checklist (Checklist.lines()), a line per failed check.

    KitError            exit 2 unless a subclass says otherwise; `hint` says what to do
      BadInput          an option or argument the user can fix
      NotFound          no such run, bundle or file
      BadRecord         a run's files or a bundle that cannot be read (not JSON, wrong schema, truncated)
      NotReady          a pre-flight check failed: this host cannot run what was asked (yet)
        Checklist       several pre-flight checks failed: one line each, root cause first
        TwinDependencyError  model twins need torch, transformers, ... (pip install '.[twins]')
      EngineError       the container engine or scheduler failed                      exit 1
        ImageError      building, pulling or reading the kit's image failed
        SlurmError      a Slurm client command failed (sbatch, squeue, scancel, ...)
      RunFailed         some arms failed; the run itself completed                    exit 1
      DiskFull          no space left where the kit writes (results, bundle)          exit 1
      Interrupted       Ctrl-C or SIGTERM stopped the run; it can be resumed          exit 130

A command whose output is itself the verdict (`kit doctor`, `kit bundle verify`) returns its exit status
instead of raising: its lines are already printed.
"""


class KitError(Exception):
    exit_code = 2

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.message, self.hint = message, hint

    def line(self):
        text = " ".join(self.message.split())       # one line, whatever the message held
        return f"{text}; {self.hint}" if self.hint else text

    def lines(self):
        """What kit.cli.main prints: one line, except for a Checklist."""
        return [self.line()]


class BadInput(KitError):
    pass


class NotFound(KitError):
    pass


class BadRecord(KitError):
    pass


class NotReady(KitError):
    pass


class Checklist(NotReady):
    """A headline and one line per item (e.g. a failed check and its fix), printed as they are."""

    def __init__(self, message, items, hint=None):
        super().__init__(message, hint)
        self.items = list(items)

    def line(self):
        return "; ".join([super().line()] + [" ".join(i.split()) for i in self.items])

    def lines(self):
        return [" ".join(self.message.split())] + [" ".join(i.split()) for i in self.items] + (
            [self.hint] if self.hint else [])


class TwinDependencyError(NotReady):
    pass


class EngineError(KitError):
    exit_code = 1


class ImageError(EngineError):
    pass


class SlurmError(EngineError):
    pass


class RunFailed(KitError):
    exit_code = 1


class DiskFull(KitError):
    exit_code = 1


class Interrupted(KitError):
    exit_code = 130
