"""``python -m hwnas.cli``: the same entry point as the ``hwnas`` console script."""

from hwnas.cli.root import main

main()
