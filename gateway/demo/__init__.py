"""The demo: the whole gateway against the simulated PBX and the simulated Twilio."""
