"""The one entry point: `python app.py --help`."""

import sys

from chatbot.cli import main

if __name__ == "__main__":
    sys.exit(main())
