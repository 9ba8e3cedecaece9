"""``python -m hwnas.supernet COMMAND``: the supernet commands without the main CLI.

Mostly for ``torchrun --nproc_per_node N -m hwnas.supernet train-supernet ...``, which needs a
module to launch (``torchrun $(which hwnas) train-supernet`` works as well once the main CLI
registers the commands).
"""

from __future__ import annotations

import logging

import click

from hwnas.cli.boundary import HwnasGroup
from hwnas.cli.supernet import COMMANDS


@click.group(cls=HwnasGroup)  # the main CLI's error boundary: one line, exit 1 (130: Ctrl-C)
def group():
    """hwnas supernet commands."""


for _command in COMMANDS:
    group.add_command(_command)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    group.main(prog_name="python -m hwnas.supernet")


if __name__ == "__main__":
    main()
