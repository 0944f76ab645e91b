"""``python -m crudauth.cli``."""

from crudauth.cli import main

main()
