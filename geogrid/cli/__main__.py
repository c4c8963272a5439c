"""``python -m geogrid.cli``: the ``geogrid`` command."""

from geogrid.cli import main

main()
