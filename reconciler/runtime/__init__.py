"""The imperative shell: observe, execute, the daemon loop and its HTTP server."""
