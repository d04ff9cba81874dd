import sys

from jaxmech._src.app.cli import main

sys.exit(main())
