"""`python -m processor`: the operator CLI, as the `processor` console script."""

from processor.cli import main

main()
