"""`python -m submit`: the `submit` console script."""

from submit.cli import main

main()
