"""Development tools, left out of the production image: the Meta emulator, the demo, the settings docs.

Nothing outside ``dev`` imports it, except the CLI's development commands, which say so when it is not
installed.
"""
