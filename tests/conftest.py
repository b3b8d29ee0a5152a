import sys
from pathlib import Path

# Tests import shared helpers (strategies.py) by module name.
sys.path.insert(0, str(Path(__file__).parent))
