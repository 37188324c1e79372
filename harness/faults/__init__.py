"""Fault injection: the embedded Toxiproxy-compatible server, its launcher and the harness's client."""
