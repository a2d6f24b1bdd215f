"""Simulators of the gateway's peers, shipped as product: a PBX speaking AMI over
TCP (``gateway.sim.ami``) and Twilio's Messages API over HTTP (``gateway.sim.twilio``)."""
