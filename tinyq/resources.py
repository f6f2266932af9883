"""Where tinyq's data folders are: boards, templates and firmware sources.

tinyq is installed editable from its checkout (the README's setup does that), so the
top-level folders of the repository are the data folders.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BOARDS_DIR = REPO_ROOT / "boards"
TEMPLATES_DIR = REPO_ROOT / "templates"
FIRMWARE_DIR = REPO_ROOT / "firmware"
EXAMPLES_DIR = REPO_ROOT / "examples"
