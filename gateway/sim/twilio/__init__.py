"""A simulated Twilio Messages API, shipped as product: tests, the demo and the
benchmarks send through it with the real ``twilio`` client over loopback.

    async with SimulatedTwilio("AC…", "token") as tw:
        client.api.base_url = tw.base_url
"""

from gateway.sim.twilio.server import Faults, SimMessage, SimulatedTwilio

__all__ = ["Faults", "SimMessage", "SimulatedTwilio"]
