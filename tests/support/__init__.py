"""What the tests stand on: real servers in threads of their own, the service under test, the Meta
emulator, test pages, and one reader each for metrics, problems, images and browser processes."""
