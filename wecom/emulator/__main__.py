"""`python -m wecom.emulator --port 8900 --seed demo …`"""

from .run import main

if __name__ == "__main__":
    main()
