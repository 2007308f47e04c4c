"""One file per schema revision, oldest first: ``0001`` release 0.1, ``0002`` the register."""
