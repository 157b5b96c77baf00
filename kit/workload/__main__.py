import sys

from kit.workload.runner import main

sys.exit(main())
