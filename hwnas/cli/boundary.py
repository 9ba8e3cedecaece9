"""The command line's one error boundary: whatever escapes a command becomes one line.

Every exception that leaves a command, and every click usage error, is printed as a single
line on stderr that names the file or option and the reason (``hwnas: error: ...``), with exit
status 1; Ctrl-C exits 130 and says only what was really saved (``hwnas: interrupted; ...``).
With ``-vv`` the traceback is printed first. An exception hwnas did not anticipate (not an
HwnasError, not an OSError) is still one line, marked as a bug to report.

``HwnasGroup`` does this in ``main``, which both the ``hwnas`` entry point and click's
CliRunner call, so the tests see exactly what a user sees.

An empty value is refused there too, before any command runs: every path parameter of every
command (and ``--data``, ``--space``) rejects ``''`` and blanks, which would otherwise be read
as the current folder (``Path('')`` is ``.``) or, being false, as the option left out.
"""

from __future__ import annotations

import errno
import logging
import sys
import traceback

import click

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130
BUG = "a bug in hwnas: rerun with -vv for the traceback, and please report it"


LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class _CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when it emits: click's CliRunner
    swaps stderr per invocation, so tests see hwnas's warnings exactly where a user does."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def log_to_stderr(level: int) -> None:
    """Send hwnas's own log records to stderr at ``level`` (idempotent per process)."""
    logger = logging.getLogger("hwnas")
    if not any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
    logger.propagate = False  # the root handler (third-party libraries) would print it twice
    logger.setLevel(level)


class OneLine(click.ClickException):
    """An error already reduced to one line, shown as ``hwnas: {prefix}{message}``."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR, prefix: str = "error: "):
        super().__init__(" ".join(str(message).split()))
        self.exit_code, self.prefix = exit_code, prefix

    def show(self, file=None) -> None:
        click.echo(f"hwnas: {self.prefix}{self.message}", err=True)


def describe_oserror(e: OSError) -> str:
    """'PATH: reason', naming the file the operation was about (a rename's target)."""
    from hwnas.home import hwnas_home

    path = e.filename2 if e.filename2 is not None else e.filename
    reason = e.strerror or type(e).__name__
    reason = reason[:1].lower() + reason[1:]  # "No space left ..." -> "no space ..."; paths kept
    if path is None:
        return f"{reason} ({type(e).__name__})"
    where = str(path)
    try:
        home = hwnas_home()
        if str(path).startswith(str(home)):
            where += f" (under HWNAS_HOME={home})"
    except Exception:  # noqa: BLE001 - a hint only
        pass
    return f"{where}: {reason}"


def one_line(e: BaseException, ctx: click.Context | None = None) -> OneLine:
    """The one line an exception becomes."""
    from hwnas.errors import HwnasError, Interrupted

    if isinstance(e, Interrupted):
        return OneLine(e.saved, EXIT_INTERRUPTED, "interrupted; ")
    if isinstance(e, KeyboardInterrupt):
        return OneLine("nothing in progress was saved", EXIT_INTERRUPTED, "interrupted; ")
    if isinstance(e, OneLine):
        return e
    if isinstance(e, click.UsageError):
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        return OneLine(e.format_message() + hint)
    if isinstance(e, click.ClickException):
        return OneLine(e.format_message())
    if isinstance(e, HwnasError):
        return OneLine(str(e))
    if isinstance(e, OSError):
        return OneLine(describe_oserror(e))
    if isinstance(e, MemoryError):
        return OneLine("out of memory")
    return OneLine(f"unexpected {type(e).__name__}: {e}; {BUG}")


# options whose text is a name a blank cannot be (paths are found by their type)
NAMED = {"data": "names no dataset; give digits, shapes[:...] or an ImageFolder directory "
                 "(./ for the current one)",
         "space": "names no search space"}
EMPTY_PATH = "an empty path names no file (./ for the current folder)"


def _refusing_blanks(convert, why: str):
    def checked(value, param, ctx):
        if isinstance(value, str) and not value.strip():
            raise click.BadParameter(f"{value!r}: {why}", ctx=ctx, param=param)
        return convert(value, param, ctx)

    checked.refuses_blanks = True
    return checked


class _NonBlank(click.types.StringParamType):
    def __init__(self, why: str):
        self.convert = _refusing_blanks(super().convert, why)


def refuse_blanks(group: click.Group) -> None:
    """Make every path parameter under ``group`` (and the named text options) refuse '' and
    blanks. Idempotent; done once the tree of commands is complete, so a command added in
    any module is covered without its author remembering."""
    todo = [group]
    while todo:
        cmd = todo.pop()
        if isinstance(cmd, click.Group):
            todo.extend(cmd.commands.values())
        for param in cmd.params:
            if isinstance(param.type, click.Path):
                if not getattr(param.type.convert, "refuses_blanks", False):
                    param.type.convert = _refusing_blanks(param.type.convert, EMPTY_PATH)
            elif param.name in NAMED and type(param.type) is click.types.StringParamType:
                param.type = _NonBlank(NAMED[param.name])


class HwnasGroup(click.Group):
    """A click group whose commands share the error boundary (see the module docstring)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except OSError as e:
            if e.errno == errno.EPIPE:  # stdout closed early (| head): click's own handling
                raise
            raise self._converted(e, ctx) from None
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - this is the boundary
            raise self._converted(e, ctx) from None

    @staticmethod
    def _converted(e: BaseException, ctx: click.Context) -> OneLine:
        if (ctx.params.get("verbose") or 0) >= 2 and not isinstance(e, click.ClickException):
            traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        return one_line(e, ctx)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        refuse_blanks(self)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except click.exceptions.Abort:  # Ctrl-C while click itself was parsing or prompting
            one_line(KeyboardInterrupt()).show()
            code = EXIT_INTERRUPTED
        except click.ClickException as e:  # ours, or a usage error of the group itself
            line = one_line(e)
            line.show()
            code = line.exit_code
        if standalone_mode:
            sys.exit(code)
        return code
