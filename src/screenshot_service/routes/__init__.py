"""HTTP routes: decode the request, call a service, encode the answer. Nothing imports from here but the app."""
