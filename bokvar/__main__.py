"""`python -m bokvar ...`: the `bokvar` console script."""

from bokvar.cli import main

main()
