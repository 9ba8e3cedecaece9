"""``python -m hwnas.supernet COMMAND``: the supernet commands without the main CLI.

Mostly for ``torchrun --nproc_per_node N -m hwnas.supernet train-supernet ...``, which needs a
module to launch (``torchrun $(which hwnas) train-supernet`` works as well once the main CLI
registers the commands).
"""

from __future__ import annotations

import logging
import sys

import click

from hwnas.cli_supernet import COMMANDS
from hwnas.errors import HwnasError


@click.group()
def group():
    """hwnas supernet commands."""


for _command in COMMANDS:
    group.add_command(_command)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        group(standalone_mode=False)
    except HwnasError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
