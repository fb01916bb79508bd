"""`python -m bokvar.cli_main`: the bokvar command without the console script."""

from bokvar.cli import main

main()
