"""How a session's traffic leaves: the relay and networks, the proxy wiring, the ssh tunnel."""
