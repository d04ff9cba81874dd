import sys

from jaxmech._src.cli import main

sys.exit(main())
