"""HTTP routes: decode the request, call a service, encode the answer. Only ``api`` imports these."""
