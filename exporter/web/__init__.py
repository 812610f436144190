"""The HTTP server and its web config: endpoints, connections, TLS, basic auth, limits."""
