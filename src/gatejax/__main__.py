import sys

from gatejax.cli import main

sys.exit(main())
