"""Call records built from AMI events: the pure builder, the storing service, ``gateway calls``."""
