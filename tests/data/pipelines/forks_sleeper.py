"""A user's script that starts a long-lived process and returns at once.

The sleeper holds the script's stdout and stderr open and names this file on its command line,
so a test can look for it after doctor has finished.
"""

import subprocess
import sys

subprocess.Popen([sys.executable, "-c", "import time; time.sleep(40)", __file__])
