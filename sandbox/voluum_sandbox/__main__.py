"""``python -m voluum_sandbox``: same as the ``voluum-sandbox`` console script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
