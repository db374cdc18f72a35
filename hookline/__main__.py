"""``python -m hookline``: the ``hookline`` command, as ``serve`` starts its children."""

from hookline.cli import main

main()
