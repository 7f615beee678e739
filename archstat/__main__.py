"""``python -m archstat`` and the ``archstat`` command: the command line.

The entry point catches Ctrl-C while the command line is still being imported, so an early
interrupt exits with 130 like a later one, without a traceback.
"""
import sys


def entry() -> None:
    """Console-script entry point."""
    try:
        from .cli import run
    except KeyboardInterrupt:
        print("archstat: interrupted", file=sys.stderr)
        sys.exit(130)
    run()


if __name__ == "__main__":
    entry()
