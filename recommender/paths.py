"""Where the bundled data lives inside the project."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
CATALOG_CSV = DATA_DIR / "catalog.csv"
VOCABULARY_JSON = DATA_DIR / "vocabulary.json"
