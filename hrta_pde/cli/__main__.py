"""``python -m hrta_pde.cli``: the command line."""
import sys

from hrta_pde.cli import main

sys.exit(main())
