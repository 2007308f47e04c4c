"""The camera client: capture, blink-to-scan, HUD, and an offline queue. It talks to the server
over HTTP only, so it can run on another machine (a Raspberry Pi at the classroom door)."""
