import sys

from lmgrade.cli import main

sys.exit(main())
