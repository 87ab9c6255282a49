"""What the tests stand on: real servers in threads of their own, the service under test (and a reverse
proxy that can answer for it), the Meta emulator, an operator's webhook inbox, test pages, and one reader
each for metrics, problems, images and browser processes."""
