"""`make bench`: the service against the Chromium floor and a launch-per-request baseline (not tests)."""
