"""``run.log``: a run directory's own account of what happened, in stdlib ``logging``.

A run on a cluster node leaves no terminal behind, so the run directory keeps what the
console showed (the run's header and per-epoch lines, even under ``--quiet``), every warning
shown while it ran (a dropped sink, a method's note) and, when it fails, the traceback; a
job's outcome can then be read from the results directory alone. The file is appended to
by every start of the run (a resume adds its own section), with UTC timestamps.

The file handler sits on the package's logger (``nasbench_eval``), so a module that logs
through ``logging.getLogger(__name__)`` lands in the file of the run in progress; the
console output itself is unchanged (the runner still prints it; :meth:`RunLog.say` does both).

The file is opened once the run has started (its config.json is written after the search
is built; the directory itself exists earlier, made and locked by the runner): input the
build refuses (a :class:`~nasbench_eval.errors.NasbenchEvalError`, e.g. an unknown dataset)
still leaves nothing (the runner removes the directory it made), while any other exception
there (a crash) writes the file so that its traceback is kept.
"""
from __future__ import annotations

import logging
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import NasbenchEvalError
from .rundir import CONFIG_FILE, RUN_LOG_FILE

PACKAGE_LOGGER = "nasbench_eval"
_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


class _UTCFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", self.converter(record.created))


class _RunDirHandler(logging.Handler):
    """Writes to ``run.log`` once its directory exists; records from before (the build of
    the search, which creates no directory when it fails on bad input) wait in memory and
    go first."""

    def __init__(self, path: Path, wait_for_config: bool = False) -> None:
        super().__init__(logging.INFO)
        self.path = path
        self.wait_for_config = wait_for_config
        self.waiting: list[logging.LogRecord] = []
        self.file: logging.FileHandler | None = None
        self.force = False  # a crash: write even before the run has started
        self.setFormatter(_UTCFormatter(_FORMAT))

    def _started(self) -> bool:
        """The run has files of its own (config.json, or a run.log from an earlier start):
        the directory itself may exist earlier, made and locked by the runner, and is
        removed again when bad input stops the run before it starts."""
        if not self.wait_for_config:
            return self.path.parent.is_dir()
        return self.path.exists() or (self.path.parent / CONFIG_FILE).exists()

    def emit(self, record: logging.LogRecord) -> None:
        if self.file is None and (self.force or self._started()):
            self.file = logging.FileHandler(self.path, mode="a", encoding="utf-8")
            self.file.setFormatter(self.formatter)
            for waiting in self.waiting:
                self.file.handle(waiting)
            self.waiting.clear()
        if self.file is None:
            self.waiting.append(record)
        else:
            self.file.handle(record)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


class RunLog:
    """Context manager: ``run.log`` of ``run_dir`` is written while it is open.

    On an exception leaving the block it records the traceback (``failed``) or the
    interruption (Ctrl-C) and re-raises; warnings shown inside the block are copied in.
    """

    def __init__(self, run_dir: str | Path, run_id: str, wait_for_config: bool = False) -> None:
        """``wait_for_config``: write only once the run has started (its config.json exists,
        or an earlier start's run.log): the runner makes and locks the directory before it
        builds the run, and removes it again when bad input stops the build."""
        self.wait_for_config = wait_for_config
        self.path = Path(run_dir) / RUN_LOG_FILE
        self.run_id = run_id
        self.logger = logging.getLogger(f"{PACKAGE_LOGGER}.run")
        self._package = logging.getLogger(PACKAGE_LOGGER)
        self._handler: logging.Handler | None = None
        self._saved: tuple[int, bool] = (logging.NOTSET, True)
        self._showwarning: Callable[..., Any] | None = None

    def __enter__(self) -> RunLog:
        from . import __version__

        handler = _RunDirHandler(self.path, self.wait_for_config)
        self._handler = handler
        self._saved = (self._package.level, self._package.propagate)
        self._package.addHandler(handler)
        if self._package.level == logging.NOTSET or self._package.level > logging.INFO:
            self._package.setLevel(logging.INFO)
        self._package.propagate = False  # the console has its own output; no duplicates
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._show_warning
        self.logger.info("nasbench-eval %s: run %s (pid %d on %s)", __version__, self.run_id,
                         os.getpid(), platform.node())
        return self

    def _show_warning(self, message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
        assert self._showwarning is not None
        self._showwarning(message, category, filename, lineno, file, line)  # the console's
        self.logger.warning("%s: %s (%s:%d)", category.__name__, message, filename, lineno)

    def say(self, text: str, echo: Callable[[str], Any] | None = None) -> None:
        """A console line: shown through ``echo`` (None: not shown, e.g. ``--quiet``) and
        always written to the file."""
        if echo is not None:
            echo(text)
        self.logger.info(text)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
                self.logger.warning("interrupted; rerun with --resume to continue")
            elif exc_type is not None:
                if not issubclass(exc_type, NasbenchEvalError):  # a crash, even before the
                    self.path.parent.mkdir(parents=True, exist_ok=True)  # run had started
                    if isinstance(self._handler, _RunDirHandler):
                        self._handler.force = True
                self.logger.error("run failed: %s: %s", exc_type.__name__, exc,
                                  exc_info=(exc_type, exc, tb))  # type: ignore[arg-type]
        finally:
            if warnings.showwarning == self._show_warning:
                warnings.showwarning = self._showwarning  # type: ignore[assignment]
            if self._handler is not None:
                self._package.removeHandler(self._handler)
                self._handler.close()
            self._package.setLevel(self._saved[0])
            self._package.propagate = self._saved[1]


__all__ = ["PACKAGE_LOGGER", "RunLog"]
