"""What setuptools' ``hwnas`` console script runs, as a file: started with ``python THIS``, the
folder on sys.path is tests/, not the current one, exactly as for the installed script (whose
folder is the venv's bin/). Tests use it with PYTHONPATH set to this checkout, so they run the
code under test whatever an editable install elsewhere points at."""

import sys

from hwnas.cli import main

if __name__ == "__main__":
    sys.exit(main())
